"""Unions that JSON cannot tell apart, found when `@task` decorates rather than on a worker.

A union's value is stored as the JSON form of its member, without saying which member it
was. The worker validates that JSON against the whole union, and pydantic picks the
member that fits best: with `Size` an `IntEnum`, `Size | float` stores `Size.SMALL` as
`1`, which comes back as `1.0`; `datetime | str` gives back a datetime as a string. So
each union in a signature is probed when the signature is built: sample values of its
members are encoded and decoded as a worker would, and a sample that comes back as
something else refuses the signature, naming the union, the value and what it became.

Members are sampled by type: enums (every member), `Literal` values, the standard
scalars, and containers of those. A Django model travels as its primary key alone, so a
union may pair it only with None. Pydantic models, dataclasses, TypedDicts and custom
types have no samples and are not probed; a discriminated union (models that each
carry a `Literal` tag) is the safe way to send one of several of those.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Union
from uuid import UUID

import pydantic
from django.db import models
from pydantic import ConfigDict

from django_tasks import _fidelity

_ENUM_MEMBERS_PROBED = 64
_SCALAR_SAMPLES: dict[Any, list[Any]] = {
    bool: [True, False],
    # Zeros and whole days too: 0 and 86400 also read as dates (Unix time at midnight).
    int: [0, 1, 2, -1, 86_400, 1_700_000_000],
    float: [0.0, -0.0, 0.5, 1.0, 2.0, -1.5, 86_400.0],
    str: ["", "a", "0", "1", "1.5", "true", "2026-01-02", "2026-01-02T03:04:05", "P1D"],
    bytes: [b"", b"a", b"0"],
    Decimal: [Decimal(text) for text in ("0", "-0", "1", "1.5", "1E+2", "86400")],
    UUID: [UUID(int=1)],
    datetime: [datetime(2026, 1, 2, 3, 4, 5), datetime(2026, 1, 2, tzinfo=UTC)],
    date: [date(2026, 1, 2)],
    time: [time(3, 4, 5)],
    timedelta: [timedelta(0), timedelta(seconds=90)],
    type(None): [None],
}


def find_ambiguous(annotation: Any, config: ConfigDict) -> str | None:
    """Return how a union inside `annotation` would change a value sent through JSON, if so.

    `annotation` is as declared, Django model classes included; `config` is the
    signature's pydantic config. Nothing here touches the database.
    """
    for union in _unions_in(annotation):
        if _holds_model(union):
            # A model travels as its primary key, which does not say what it was.
            return (
                f"in {_name(union)}: a model instance is stored as its primary key alone, "
                "so a union may pair a model only with None"
            )
        problem = _probe(union, config)
        if problem is not None:
            return problem
    return None


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, models.Model):
        return True
    return any(_holds_model(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _unions_in(annotation: Any) -> Iterator[Any]:
    """Yield every union of two or more non-None members in `annotation`, outermost first."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return
    if origin is Annotated:
        yield from _unions_in(args[0])
        return
    if _is_union(annotation) and sum(arg is not type(None) for arg in args) > 1:
        yield annotation
    for arg in args:
        if arg is not Ellipsis:
            yield from _unions_in(arg)


def _samples(annotation: Any, depth: int = 0) -> list[Any]:
    """Return sample values of `annotation`, or none for a type that has no known samples."""
    if depth > 3:
        return []
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return list(annotation)[:_ENUM_MEMBERS_PROBED]
    if annotation in _SCALAR_SAMPLES:
        return list(_SCALAR_SAMPLES[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return list(args)
    if origin is Annotated:
        return _samples(args[0], depth + 1)
    if _is_union(annotation):
        return [value for arg in args for value in _samples(arg, depth + 1)]
    inner = [_samples(arg, depth + 1)[:2] for arg in args if arg is not Ellipsis]
    if origin is list:
        return [[], *([value] for value in inner[0])] if inner else []
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return [(), *((value,) for value in inner[0])]
    if origin is tuple:
        return [tuple(values[0] for values in inner)] if all(inner) else []
    if origin in (set, frozenset):
        hashable = [value for value in inner[0] if _hashable(value)] if inner else []
        return [origin(), *(origin([value]) for value in hashable)]
    if origin is dict and len(inner) == 2:
        keys = [key for key in inner[0] if _hashable(key)]
        return [{}, *({key: value} for key in keys[:1] for value in inner[1])]
    return []


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _probe(union: Any, config: ConfigDict) -> str | None:
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(union, config=config)
    for sample in _samples(union):
        # A member's own validators run on the samples: whatever they raise only means
        # the sample cannot be sent or read back, never that the task is unusable.
        try:
            adapter.validate_python(sample, **_fidelity.STRICT)
            stored = adapter.dump_python(sample, **_fidelity.DUMP)
        except Exception:
            continue  # a value that cannot be sent at all is refused at enqueue
        try:
            received = adapter.validate_python(stored, **_fidelity.READ_BACK)
        except Exception:
            received = _UNDECODABLE
        if not _same(received, sample):
            became = (
                "could not be read back"
                if received is _UNDECODABLE
                else f"would reach the task as {received!r} ({type(received).__name__})"
            )
            return (
                f"in {_name(union)}, {sample!r} ({type(sample).__name__}) is stored as "
                f"{stored!r} and {became}"
            )
    return None


_UNDECODABLE = object()


def _same(received: Any, sent: Any) -> bool:
    if type(received) is not type(sent):
        return False
    if isinstance(sent, dict):
        return received.keys() == sent.keys() and all(
            _same(received[key], sent[key]) for key in sent
        )
    if isinstance(sent, (list, tuple)):
        return len(received) == len(sent) and all(map(_same, received, sent))
    return bool(received == sent)


def _name(annotation: Any) -> str:
    """Return `annotation` as it is written in a signature, without module prefixes."""
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_union(annotation):
        return " | ".join(_name(arg) for arg in args)
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is Annotated:
        return _name(args[0])
    if origin is not None:
        inner = ", ".join("..." if arg is Ellipsis else _name(arg) for arg in args)
        return f"{getattr(origin, '__name__', origin)}[{inner}]"
    return getattr(annotation, "__qualname__", repr(annotation))

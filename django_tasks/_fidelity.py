"""Typed values that JSON would change without pydantic noticing: refused at enqueue.

pydantic writes a UTC offset to the minute and replaces a lone surrogate in a dict key;
both would arrive changed. Only signatures that can hold such values are scanned.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import types
import typing
from collections import abc
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Required, Union
from uuid import UUID

from pydantic import BaseModel

_PLAIN = (int, float, str, bool, bytes, Decimal, UUID, date, timedelta, type(None))

DUMP: dict[str, Any] = {"mode": "json", "by_alias": False, "exclude_computed_fields": True}
"""How typed values are written as JSON values: each field under its own name, whatever
its aliases or its model's `serialize_by_alias`, and without computed fields, which are
computed again when the value is read back (a model that forbids extra keys would refuse
them)."""
READ_BACK: dict[str, Any] = {"strict": False, "by_alias": False, "by_name": True}
"""How JSON values are read back into their types: leniently, by field name only, as
`DUMP` writes them. By alias too, a field aliased as another field's name could take
that field's value."""
STRICT: dict[str, Any] = {"strict": True, "by_alias": True, "by_name": True}
"""How arguments and return values are validated: strictly, by alias or by field name, so
a value as a task received it (a `TypedDict` keyed by field name) validates again."""


def needs_scan(annotation: Any) -> bool:
    """Tell whether values of `annotation` may hold a datetime, a time or a dict key."""
    if annotation is Any:  # as JSON: it may hold a dict
        return True
    if annotation in _PLAIN and annotation is not datetime:
        return False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return False
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return False
    if origin in (Annotated, NotRequired, Required):
        return needs_scan(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType) or origin in _COLLECTIONS:
        # A collection of plain values holds no datetime and no dict key either; a bare
        # one (`typing.List`) may hold anything.
        members = [arg for arg in typing.get_args(annotation) if arg is not ...]
        return not members or any(needs_scan(member) for member in members)
    return True


def keys_only(annotation: Any) -> bool:
    """Tell whether only the keys of `annotation`'s values need a scan: `dict[str, V]` where
    `V` needs none and has no `Annotated` (whose validators may return anything). Such a
    dict is faithful when its keys are ASCII, checked at C speed."""
    origin = typing.get_origin(annotation)
    if origin in (NotRequired, Required):
        return keys_only(typing.get_args(annotation)[0])
    if origin not in _MAPPINGS:
        return False
    args = typing.get_args(annotation)
    return (
        len(args) == 2
        and args[0] is str
        and not needs_scan(args[1])
        and not _has_annotated(args[1])
    )


def ascii_keys(mappings: typing.Iterable[Any]) -> bool:
    """Tell whether every key of every mapping is ASCII text, in one C-speed sweep.

    ASCII keys hold no lone surrogate; False (not a proof of a problem) when some key is
    not, or is not text: `find_unfaithful` then says which and why.
    """
    try:
        return "".join(itertools.chain.from_iterable(mappings)).isascii()
    except TypeError:
        return False


def _has_annotated(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        return True
    return any(_has_annotated(arg) for arg in typing.get_args(annotation))


_MAPPINGS = frozenset({dict, abc.Mapping, abc.MutableMapping})
_COLLECTIONS = frozenset(
    {list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet}
)


def find_unfaithful(value: Any, where: str) -> str | None:
    """Return where in a validated value JSON would not keep it as it is, if anywhere."""
    found = _scan(value)
    if found is None:
        return None
    path, problem = found
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"'{where}': {problem}"


_UTC = UTC


def is_faithful_datetime(value: Any) -> bool:
    """Tell, cheaply, whether `value` is a datetime that is naive or in UTC (the usual case)."""
    return type(value) is datetime and (value.tzinfo is None or value.tzinfo is _UTC)


_Found = tuple[tuple[Any, ...], str]
SCALARS = frozenset({int, float, str, bool, type(None), Decimal, UUID, date, timedelta, bytes})


def _scan(value: Any) -> _Found | None:
    # Runs on every enqueue of a signature that needs it: cheap type checks first, and
    # the path of a problem is built only when there is one.
    kind = type(value)
    if kind in SCALARS:
        return None
    if kind is dict:
        return _scan_dict(value)
    if kind in (list, tuple, set, frozenset):
        return _scan_items(enumerate(value))
    if isinstance(value, (datetime, time)):
        return _scan_offset(value)
    if isinstance(value, BaseModel):
        return _scan_items(value.__dict__.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _scan_items((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return _scan_dict(value)
    return None


def _scan_items(items: typing.Iterable[tuple[Any, Any]]) -> _Found | None:
    for key, item in items:
        if type(item) in SCALARS:
            continue
        found = _scan(item)
        if found is not None:
            return (key, *found[0]), found[1]
    return None


def _scan_dict(value: dict[Any, Any]) -> _Found | None:
    for key in value:
        if type(key) is str and not key.isascii() and not _encodes(key):
            return (), f"the key {key!r} is not valid Unicode text (a lone surrogate)"
    return _scan_items(value.items())


def _scan_offset(value: datetime | time) -> _Found | None:
    offset = value.utcoffset()
    if offset is None or offset.total_seconds() % 60 == 0:
        return None
    return (), (
        f"its UTC offset {offset} has seconds, which JSON times cannot hold; "
        "convert it to UTC first"
    )


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first(problems: typing.Iterable[str | None]) -> str | None:
    return next((problem for problem in problems if problem), None)

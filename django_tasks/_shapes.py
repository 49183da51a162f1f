"""Types whose values JSON cannot bring back whole, found when `@task` decorates.

A field with `exclude=True` (or `exclude_if`) is left out of the stored JSON, so the
worker reads the value back without it: refused, or silently given its default. A dict
keyed by tuples, models or dataclasses has its keys written as text that pydantic cannot
read back as those. Either would pass validation at enqueue and then fail, or change,
on every run, so the signature is refused at once instead.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections import abc
from collections.abc import Iterator
from typing import Annotated, Any, Literal, NotRequired, Required, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from typing_extensions import is_typeddict

_MAPPINGS = frozenset({dict, abc.Mapping, abc.MutableMapping})
_WRAPPERS = frozenset({Annotated, NotRequired, Required})


def find_unreadable(declared: dict[str, Any]) -> str | None:
    """Say where in a signature (`name -> annotation`, "return" too) JSON loses a value."""
    for name, annotation in declared.items():
        problem = _find(annotation, set())
        if problem is not None:
            where = "the return annotation" if name == "return" else f"parameter '{name}'"
            return f"{where}: {problem}"
    return None


def _find(annotation: Any, seen: set[type]) -> str | None:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _WRAPPERS:
        return _find(args[0], seen)
    if origin is Literal:
        return None
    if origin in _MAPPINGS and len(args) == 2:
        return _key_problem(args[0]) or _find(args[1], seen)
    if origin is not None:
        return next((problem for arg in args if (problem := _find(arg, seen)) is not None), None)
    if not isinstance(annotation, type) or annotation in seen:
        return None
    seen.add(annotation)
    for name, field_type, dropped in _fields(annotation):
        if dropped:
            return (
                f"field '{annotation.__name__}.{name}' has exclude=True or exclude_if, so "
                "it is not stored and cannot come back; keep it in the JSON, or leave it "
                "out of the type"
            )
        problem = _find(field_type, seen)
        if problem is not None:
            return problem
    return None


def _key_problem(key: Any) -> str | None:
    while typing.get_origin(key) in _WRAPPERS:
        key = typing.get_args(key)[0]
    if typing.get_origin(key) in (Union, types.UnionType):
        return next(
            (problem for arg in typing.get_args(key) if (problem := _key_problem(arg))), None
        )
    origin = typing.get_origin(key) or key
    structured = isinstance(origin, type) and (
        issubclass(origin, (tuple, frozenset, list, set, dict, BaseModel))
        or dataclasses.is_dataclass(origin)
        or is_typeddict(origin)
    )
    if not structured:
        return None
    return (
        f"dict keys of type {getattr(key, '__name__', key)} are written to JSON as text "
        "that cannot be read back as one; key the dict by str, int, an enum or a date, "
        "or send a list of pairs"
    )


def _fields(cls: type) -> Iterator[tuple[str, Any, bool]]:
    """Yield each field of a model, dataclass or `TypedDict`: its name, type, and whether
    pydantic leaves it out of the JSON."""
    if issubclass(cls, BaseModel):
        for name, info in cls.model_fields.items():
            yield name, info.annotation, _drops(info)
        return
    if not (dataclasses.is_dataclass(cls) or is_typeddict(cls)):
        return
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError):  # unresolved yet: building the models reports it
        return
    # A dataclass field may carry its pydantic `Field(...)` as its default.
    fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
    defaults = {field.name: field.default for field in fields}
    for name, hint in hints.items():
        infos = [defaults.get(name), *getattr(hint, "__metadata__", ())]
        yield name, hint, any(isinstance(info, FieldInfo) and _drops(info) for info in infos)


def _drops(info: FieldInfo) -> bool:
    return bool(info.exclude) or getattr(info, "exclude_if", None) is not None

"""Types whose values JSON cannot bring back whole, found when `@task` decorates.

A field with `exclude=True` (or `exclude_if`) is left out of the stored JSON, so the
worker reads the value back without it: refused, or silently given its default. A field
aliased as another field's name could swap their values between validation by alias and
reading back by name. A mapping keyed by tuples, models or dataclasses has its keys
written as text that pydantic cannot read back as those. Each would pass validation at
enqueue and then fail, or change, on every run, so the signature is refused at once.
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

_REQUIREDNESS = frozenset({NotRequired, Required})
_WRAPPERS = _REQUIREDNESS | {Annotated}


def find_unreadable(declared: dict[str, Any]) -> str | None:
    """Say where in a signature (`name -> annotation`, "return" too) JSON loses a value."""
    for name, annotation in declared.items():
        problem = _find(annotation, set())
        if problem is not None:
            where = "the return annotation" if name == "return" else f"parameter '{name}'"
            return f"{where}: {problem}"
    return None


def _find(annotation: Any, seen: set[Any]) -> str | None:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _WRAPPERS:
        return _find(args[0], seen)
    if origin is Literal:
        return None
    if _is_mapping(origin) and len(args) == 2:
        return _key_problem(args[0]) or _find(args[1], seen)
    found = (_find(arg, seen) for arg in args if arg is not Ellipsis)
    problem = next((problem for problem in found if problem is not None), None)
    # A generic class (`Box[int]`) has fields of its own besides its type arguments.
    cls = origin if origin is not None else annotation
    if problem is not None or not isinstance(cls, type) or cls in seen:
        return problem
    seen.add(cls)
    return _field_problem(cls, seen)


def _field_problem(cls: type, seen: set[Any]) -> str | None:
    fields = list(_fields(cls))
    names = {name for name, _, _ in fields}
    for name, field_type, infos in fields:
        where = f"field '{cls.__name__}.{name}'"
        if any(map(leaves_out, infos)):
            return (
                f"{where} has exclude=True or exclude_if, so it is not stored and cannot "
                "come back; keep it in the JSON, or leave it out of the type"
            )
        clash = next((alias for alias in _aliases(infos) if alias in names - {name}), None)
        if clash is not None:
            return (
                f"{where} has the alias '{clash}', the name of another of its fields, so "
                "their values could trade places; use an alias no field is named"
            )
        problem = _find(field_type, seen)
        if problem is not None:
            return problem
    return None


def leaves_out(info: FieldInfo) -> bool:
    """Tell whether a `Field` leaves its value out of the JSON: `exclude` or `exclude_if`."""
    return bool(info.exclude) or getattr(info, "exclude_if", None) is not None


def _unwrapped(annotation: Any, wrappers: frozenset[Any] = _WRAPPERS) -> Any:
    while typing.get_origin(annotation) in wrappers:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _key_problem(key: Any) -> str | None:
    key = _unwrapped(key)
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


def _is_mapping(origin: Any) -> bool:
    """Tell whether a generic's origin is a mapping: `dict`, `Mapping`, `OrderedDict`..."""
    return isinstance(origin, type) and issubclass(origin, abc.Mapping)


def _fields(cls: type) -> Iterator[tuple[str, Any, list[FieldInfo]]]:
    """Yield each field of a model, dataclass or `TypedDict`: its name, its type, and the
    pydantic `FieldInfo`s that say how it is written."""
    if not (issubclass(cls, BaseModel) or dataclasses.is_dataclass(cls) or is_typeddict(cls)):
        return
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError):  # unresolved yet: building the models reports it
        hints = {}
    if issubclass(cls, BaseModel):
        for name, info in cls.model_fields.items():
            yield name, hints.get(name, info.annotation), [info]
        return
    # A dataclass field may carry its pydantic `Field(...)` as its default.
    fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
    defaults = {field.name: field.default for field in fields}
    for name, hint in hints.items():
        inner = _unwrapped(hint, _REQUIREDNESS)  # keeps `Annotated`, whose metadata is read
        metadata = [defaults.get(name), *getattr(inner, "__metadata__", ())]
        yield name, hint, [info for info in metadata if isinstance(info, FieldInfo)]


def _aliases(infos: list[FieldInfo]) -> set[str]:
    found: set[str] = set()
    for info in infos:
        found.update(
            alias
            for alias in (info.alias, info.validation_alias, info.serialization_alias)
            if isinstance(alias, str)
        )
    return found

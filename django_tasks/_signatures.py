"""Turn a task function's signature into pydantic validators for its arguments and result.

Each task function gets one `TaskSignature`, built when `@task` decorates it. The shape of
the signature (parameter kinds, the context parameter) is checked at once; the pydantic
models are built at once too, unless an annotation cannot be resolved yet (a class
defined or imported later in the module), in which case they are built on first use.
The `django_tasks` system check builds every registered task's models at startup, so
such errors still surface before the first request.
"""

from __future__ import annotations

import datetime
import inspect
import math
import operator
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, NamedTuple, NotRequired, Union

import pydantic
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticSerializationError
from typing_extensions import TypedDict

from django_tasks import _fidelity, _instances, _shapes, _unions, exceptions

_CONFIG = ConfigDict(
    strict=True,
    allow_inf_nan=False,
    arbitrary_types_allowed=False,
    # A dataclass instance is validated field by field, not trusted as built.
    revalidate_instances="always",
)
_POSITIONAL_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_INPUT_REPR_LIMIT = 60
_LOAD: dict[str, Any] = {**_fidelity.READ_BACK, "context": {_instances.LOADING: True}}
"""How a worker reads stored values back, fetching Django model instances by key."""


def _json_value(value: Any) -> Any:
    """Accept only values JSON holds faithfully, as `django.tasks` does for untyped data."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise PydanticCustomError("json_finite", "NaN and infinities cannot be stored as JSON")
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise PydanticCustomError(
                "json_keys",
                "dict keys must be str to be stored as JSON; annotate it "
                "(for example dict[int, str]) to send other keys",
            )
        return {key: _json_value(item) for key, item in value.items()}
    raise PydanticCustomError(
        "json_type",
        "{type_name} is not JSON-compatible; annotate it with its type "
        "so it can be validated and serialized",
        {"type_name": type(value).__name__},
    )


JsonCompatible = Annotated[Any, PlainValidator(_json_value)]
"""What an unannotated parameter or return, or a bare `Any`, accepts: plain JSON values."""


def _replace_any(annotation: Any) -> Any:
    """Return `annotation` with every bare `Any` replaced by `JsonCompatible`.

    Without this, pydantic would accept any object for `Any` and turn what JSON cannot
    hold into a string on the way out, which silently changes the value.
    """
    if annotation is Any:
        return JsonCompatible
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is None or not args:
        return annotation
    if origin is Annotated:
        return Annotated[(_replace_any(args[0]), *annotation.__metadata__)]
    if origin is typing.Literal:
        return annotation
    replaced = tuple(_replace_any(arg) if arg is not Ellipsis else arg for arg in args)
    if replaced == args:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[replaced]  # noqa: UP007 - rebuilding a union from a tuple of members
    if origin is Callable or origin is typing.ClassVar:
        return annotation
    try:
        return annotation.copy_with(replaced)
    except AttributeError:
        return origin[replaced if len(replaced) > 1 else replaced[0]]


_JSON_SCALARS = (int, float, str, bool, type(None))


def _json_native(annotation: Any) -> bool:
    """Tell whether a value of `annotation`, validated strictly, is already its own JSON form.

    So it is for `int`, `float`, `str`, `bool` and None, and lists, `dict[str, ...]` and
    unions of those: strict validation returns exact built-in types (an `IntEnum` member
    comes out as an `int`), which pydantic's JSON dump would copy unchanged. `Annotated`
    is not, since its metadata may serialize the value differently.
    """
    if annotation in _JSON_SCALARS:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return all(_json_native(arg) for arg in args)
    if origin is list and len(args) == 1:
        return _json_native(args[0])
    if origin is dict and len(args) == 2:
        return args[0] is str and _json_native(args[1])
    return False


_BUILT_IN_SCALARS = (
    *_JSON_SCALARS,
    bytes,
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
)
_BUILT_IN_CONTAINERS = (list, tuple, set, frozenset, dict, Union, types.UnionType)


def _built_in(annotation: Any) -> bool:
    """Tell whether `annotation` is made of Python's own types only, so validating,
    dumping and encoding its values runs no validator, serializer or lookup of the project.

    So it is for the scalars of `_BUILT_IN_SCALARS`, `Literal`s of text, numbers, booleans
    and None, and lists, tuples, sets, dicts and unions of those. Not for models (a
    Django model is fetched from the database; a pydantic model may have validators),
    dataclasses, enums, `Annotated` (its validators are the project's), `Decimal` (its
    text follows the thread's decimal context) or `Any`. What a value brings along still
    runs: a `tzinfo`'s `utcoffset`, the methods of a subclass of `str` or `dict`.
    """
    if annotation in _BUILT_IN_SCALARS:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return all(type(arg) in _JSON_SCALARS for arg in args)
    return (
        origin in _BUILT_IN_CONTAINERS
        and bool(args)
        and all(arg is Ellipsis or _built_in(arg) for arg in args)
    )


def _holds_models(annotation: Any) -> bool:
    """Tell whether `annotation` can hold a pydantic model, whose own config may allow NaN."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_models(arg) for arg in typing.get_args(annotation))


def _location(loc: Sequence[int | str], root: str) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or root


def location(loc: Sequence[int | str]) -> str:
    """Write where an argument is as error messages do: `when`, `rest[0]`, `item.sku`."""
    return _location(loc, "arguments")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _INPUT_REPR_LIMIT else text[: _INPUT_REPR_LIMIT - 3] + "..."


def describe_errors(errors: Iterable[Mapping[str, Any]], root: str = "arguments") -> list[str]:
    """Return one readable line per pydantic error: where, what was expected, what came."""
    lines = []
    for error in errors:
        where = _location(error["loc"], root)
        if error["type"] == "missing":
            lines.append(f"'{where}': missing required argument")
            continue
        value = error.get("input")
        lines.append(
            f"'{where}': {error['msg']} (got {type(value).__name__}: {_short_repr(value)})"
        )
    return lines


def find_unstorable(value: Any, where: str = "") -> str | None:
    """Return where in a JSON-compatible `value` JSON storage would change it, if anywhere.

    PostgreSQL's jsonb refuses the NUL character, and orjson writes NaN as null.
    """
    if isinstance(value, str):
        return f"'{where}': the NUL character \\u0000 cannot be stored" if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"'{where}': NaN and infinities cannot be stored"
    if isinstance(value, list):
        found = (find_unstorable(item, f"{where}[{index}]") for index, item in enumerate(value))
        return next((problem for problem in found if problem), None)
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            problem = find_unstorable(key, where) or find_unstorable(item, inner)
            if problem:
                return problem
    return None


Call = tuple[Sequence[Any], Mapping[str, Any]]
"""One call's positional and keyword arguments, as given."""
Problem = tuple[int, exceptions.InvalidTask]
"""A bad call of a bulk enqueue: its index, and why it is invalid."""


class BoundCall(NamedTuple):
    """A call's arguments after validation: as the task receives them, and as JSON values.

    A named tuple: a bulk enqueue makes one per call, and a tuple is the cheapest to make.
    """

    args: list[Any]
    kwargs: dict[str, Any]
    payload: dict[str, Any]
    """`{"args": [...], "kwargs": {...}}` in JSON-compatible values, ready for a codec."""
    may_hold_nan: bool


_new_bound = tuple.__new__


class _Models:
    """The validators of one signature, built once all annotations resolve.

    Arguments validate as a `TypedDict` keyed by parameter name, with the parameters
    that have defaults not required: the validated dict holds exactly what the caller
    passed, so defaults stay the function's own.
    """

    __slots__ = (
        "_leading",
        "_many",
        "_rows",
        "_split_at",
        "all_native",
        "ambiguous",
        "arguments",
        "built_in",
        "dump_arguments",
        "keys_only",
        "may_hold_nan",
        "names",
        "native",
        "renamed",
        "result",
        "returns_none",
        "row_types",
        "scan_names",
        "unreadable",
        "validate_arguments",
    )

    def __init__(self, func: Callable[..., Any], parameters: list[inspect.Parameter]) -> None:
        hints = typing.get_type_hints(func, include_extras=True)
        fields: dict[str, Any] = {}
        row_types: list[Any] | None = []
        # As written (models not yet replaced by their keys): checked for unions.
        declared = {
            name: _replace_any(hints.get(name, Any))
            for name in [*(parameter.name for parameter in parameters), "return"]
        }
        for parameter in parameters:
            annotation = _instances.replace_models(declared[parameter.name])
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                annotation = tuple[annotation, ...]  # type: ignore[valid-type]
                row_types = None
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                annotation = dict[str, annotation]  # type: ignore[valid-type]
                row_types = None
            elif row_types is not None:
                row_types.append(annotation)
            if parameter.default is not inspect.Parameter.empty or parameter.kind in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                annotation = NotRequired[annotation]
            fields[parameter.name] = annotation
        name = func.__qualname__.replace(".", "_")
        arguments = TypedDict(f"{name}_arguments", fields)  # type: ignore[misc]
        arguments.__pydantic_config__ = _CONFIG  # type: ignore[attr-defined]
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(arguments)
        self.arguments = arguments
        self._many: pydantic.TypeAdapter[list[Any]] | None = None
        self._rows: pydantic.TypeAdapter[list[Any]] | None = None
        self._split_at: dict[int, pydantic.TypeAdapter[list[Any]]] = {}
        self._leading: dict[int, pydantic.TypeAdapter[list[Any]]] = {}
        self.names = tuple(fields)
        self.row_types = None if row_types is None else tuple(row_types)
        """Each parameter's type in order, when every call that passes them all may be
        validated as a tuple (`rows`); None when the signature has `*args` or `**kwargs`."""
        self.native = (
            () if row_types is None else tuple(_json_native(annotation) for annotation in row_types)
        )
        """By position, whether a parameter's validated values are their own JSON form
        (`_json_native`): a bulk enqueue need not dump those."""
        self.all_native = row_types is not None and all(self.native)
        """Whether every parameter's values are their own JSON form (no `*args`, `**kwargs`)."""
        self.built_in = all(_built_in(declared[parameter.name]) for parameter in parameters)
        """Whether every parameter is of Python's own types (`_built_in`): binding and
        encoding a call then run no validator, serializer or lookup of the project."""
        self.validate_arguments = adapter.validate_python
        self.dump_arguments = adapter.dump_python
        returns = _instances.replace_models(declared["return"])
        self.returns_none = returns is type(None)
        """Whether the function is annotated `-> None`: its None needs no model."""
        self.result: type[BaseModel] = pydantic.create_model(
            f"{name}_result", __config__=_CONFIG, value=(returns, ...)
        )
        self.result.model_rebuild(raise_errors=True)
        self.ambiguous = _find_ambiguous(declared)
        self.unreadable = _shapes.find_unreadable(declared)
        self.renamed = next(
            (parameter.name for parameter in parameters if _renames(declared[parameter.name])),
            None,
        )
        """The first parameter whose `Field` renames it or leaves it out of the payload."""
        self.may_hold_nan = any(_holds_models(annotation) for annotation in fields.values())
        self.scan_names = tuple(
            name for name, annotation in fields.items() if _fidelity.needs_scan(annotation)
        )
        """The parameters whose values `_refuse_unfaithful` looks at (often none)."""
        self.keys_only = frozenset(
            name for name in self.scan_names if _fidelity.keys_only(fields[name])
        )
        """Of those, the `dict[str, V]` ones whose values need no scan: ASCII keys pass."""

    @property
    def many(self) -> pydantic.TypeAdapter[list[Any]]:
        """Return the validator of a list of calls, built on the first bulk enqueue."""
        if self._many is None:
            self._many = pydantic.TypeAdapter(list[self.arguments])  # type: ignore[name-defined]
        return self._many

    @property
    def rows(self) -> pydantic.TypeAdapter[list[Any]]:
        """Return the validator of a list of calls that each pass every parameter, as tuples.

        Each tuple holds a call's arguments in parameter order. Every position validates
        and dumps with its parameter's type and the same configuration as `arguments`, so
        the values are those the `TypedDict` gives, without a dict per call in and out:
        less than half the time for a bulk enqueue's usual calls.
        """
        if self._rows is None:
            row: Any = types.GenericAlias(tuple, self.row_types)  # tuple[int, str, ...]
            self._rows = pydantic.TypeAdapter(list[row], config=_CONFIG)
        return self._rows

    def leading(self, passed: int) -> pydantic.TypeAdapter[list[Any]]:
        """Return the validator (and dumper) of the first `passed` arguments, as tuples."""
        adapter = self._leading.get(passed)
        if adapter is None:
            row_types = typing.cast(tuple[Any, ...], self.row_types)
            positional: Any = types.GenericAlias(tuple, row_types[:passed])
            adapter = self._leading[passed] = pydantic.TypeAdapter(list[positional], config=_CONFIG)
        return adapter

    def split_at(self, passed: int) -> pydantic.TypeAdapter[list[Any]]:
        """Return the validator of calls `(args, kwargs)` that pass `passed` arguments
        positionally and every other parameter by keyword, taken as they are.

        `args` validates as a tuple of the first parameters' types and `kwargs` as a
        `TypedDict` of the others, each key required; the caller checks that `kwargs`
        holds as many keys as there are other parameters, so it holds exactly those. The
        typed keywords come out of pydantic as a dict in parameter order, as from
        `arguments`: a third less time per call than splitting a tuple (`rows`) again.
        Built once per such split, on the first bulk enqueue that uses it.
        """
        adapter = self._split_at.get(passed)
        if adapter is None:
            row_types = typing.cast(tuple[Any, ...], self.row_types)
            fields = dict(zip(self.names[passed:], row_types[passed:], strict=True))
            keywords = TypedDict(f"keywords_after_{passed}", fields)  # type: ignore[misc]
            keywords.__pydantic_config__ = _CONFIG  # type: ignore[attr-defined]
            positional = types.GenericAlias(tuple, row_types[:passed])
            call: Any = types.GenericAlias(tuple, (positional, keywords))
            adapter = self._split_at[passed] = pydantic.TypeAdapter(list[call], config=_CONFIG)
        return adapter


def _values_of(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Return a function that gives the values of `names` in a mapping, as a tuple."""
    if not names:
        return lambda mapping: ()
    if len(names) == 1:
        only = operator.itemgetter(names[0])
        return lambda mapping: (only(mapping),)
    return operator.itemgetter(*names)


def _renames(annotation: Any) -> bool:
    """Tell whether `Annotated` gives a parameter a pydantic `Field` that renames or drops it.

    A call passes a parameter by its own name, and the stored payload must hold it: an
    alias or `exclude` on a parameter is refused when the task is decorated.
    """
    if typing.get_origin(annotation) is not Annotated:
        return False
    return any(
        isinstance(meta, FieldInfo)
        and (
            meta.alias is not None
            or meta.validation_alias is not None
            or meta.serialization_alias is not None
            or _shapes.leaves_out(meta)
        )
        for meta in annotation.__metadata__
    )


def _find_ambiguous(declared: dict[str, Any]) -> str | None:
    """Say where a union in the signature would change what JSON carries, if anywhere."""
    for name, annotation in declared.items():
        problem = _unions.find_ambiguous(annotation, _CONFIG)
        if problem is not None:
            where = "the return annotation" if name == "return" else f"parameter '{name}'"
            return f"{where}: {problem}"
    return None


class TaskSignature:
    """The validated shape of a task function: how its calls bind, validate and encode."""

    def __init__(self, func: Callable[..., Any], *, takes_context: bool, task_path: str) -> None:
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        """Whether `func` is a coroutine function (the worker asks for each task it runs)."""
        self.task_path = task_path
        parameters = list(inspect.signature(func).parameters.values())
        if takes_context:
            if not parameters or parameters[0].kind not in _POSITIONAL_KINDS:
                raise exceptions.InvalidTask(
                    f"Task '{task_path}' is declared with takes_context=True but has no "
                    "positional first parameter to receive the context; add one, "
                    "conventionally `context: TaskContext`.",
                    task_path=task_path,
                )
            parameters = parameters[1:]
        self.parameters = parameters
        self.names = tuple(p.name for p in parameters)
        # By how many arguments a call passes positionally: the values of the others, as
        # a tuple, from its keywords (`_rows`).
        self._keywords_after = [
            _values_of(self.names[passed:]) for passed in range(len(self.names) + 1)
        ]
        self.positional = [p.name for p in parameters if p.kind in _POSITIONAL_KINDS]
        self.positional_only = {
            p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_ONLY
        }
        self.keyword = {p.name for p in parameters if p.kind in _KEYWORD_KINDS}
        self.var_positional = next(
            (p.name for p in parameters if p.kind is inspect.Parameter.VAR_POSITIONAL), None
        )
        self.var_keyword = next(
            (p.name for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD), None
        )
        self._models: _Models | None = None
        try:
            self.build()
        except exceptions.InvalidTask as error:
            if not isinstance(error.__cause__, (NameError, pydantic.PydanticUndefinedAnnotation)):
                raise

    def build(self) -> _Models:
        """Build the pydantic models, or raise `InvalidTask` saying why they cannot be."""
        if self._models is not None:
            return self._models
        try:
            self._models = _Models(self.func, self.parameters)
        except (NameError, pydantic.PydanticUndefinedAnnotation) as error:
            raise exceptions.InvalidTask(
                f"The annotations of task '{self.task_path}' cannot be resolved: {error}. "
                "Make every type in the signature importable from the task's module.",
                task_path=self.task_path,
            ) from error
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError) as error:
            raise exceptions.InvalidTask(
                f"The signature of task '{self.task_path}' uses a type pydantic cannot "
                f"validate: {error.message.rstrip('.')}. Use a supported type, or annotate "
                "the type with Annotated[..., PlainValidator(...), PlainSerializer(...)].",
                task_path=self.task_path,
            ) from error
        if self._models.renamed is not None:
            name, self._models = self._models.renamed, None
            raise exceptions.InvalidTask(
                f"Parameter '{name}' of task '{self.task_path}' has a pydantic Field with an "
                "alias, exclude=True or exclude_if; a call passes it by its own name and its "
                "value must be stored, so remove the alias or the exclude.",
                task_path=self.task_path,
            )
        if self._models.unreadable is not None:
            problem, self._models = self._models.unreadable, None
            raise exceptions.InvalidTask(
                f"Task '{self.task_path}' has a type whose values JSON cannot bring back "
                f"whole, in {problem}.",
                task_path=self.task_path,
            )
        if self._models.ambiguous is not None:
            problem, self._models = self._models.ambiguous, None
            raise exceptions.InvalidTask(
                f"Task '{self.task_path}' has a union whose members JSON cannot tell apart, "
                f"in {problem}. Use one type there, or a discriminated union (pydantic "
                "models that each carry a Literal tag field).",
                task_path=self.task_path,
            )
        return self._models

    @property
    def built_in_only(self) -> bool:
        """Whether every parameter is annotated with Python's own types only (`_built_in`):
        binding and encoding a call run no validator, serializer or model lookup of the
        project, so they may run on a thread other than the caller's."""
        return (self._models or self.build()).built_in

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Map a call's arguments to parameter names, as Python would, or raise."""
        names = self.positional
        if len(args) <= len(names):
            data = dict(zip(names, args, strict=False))
            if not kwargs:
                return data
            # Every keyword names a parameter that takes one, and none was passed
            # positionally: what the loop below would do, in two set operations.
            if self.keyword.issuperset(kwargs) and data.keys().isdisjoint(kwargs):
                data.update(kwargs)
                return data
        if len(args) > len(names) and self.var_positional is None:
            self._reject(
                f"takes {len(names)} positional argument{'s' * (len(names) != 1)} "
                f"but {len(args)} were given"
            )
        data = dict(zip(names, args, strict=False))
        if len(args) > len(names):
            data[typing.cast(str, self.var_positional)] = tuple(args[len(names) :])
        extra: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name in self.keyword:
                if name in data:
                    self._reject(f"got multiple values for argument '{name}'")
                data[name] = value
            elif self.var_keyword is not None:
                extra[name] = value
            elif name in self.positional_only:
                self._reject(f"got positional-only argument '{name}' passed as keyword")
            else:
                self._reject(f"got an unexpected keyword argument '{name}'")
        if extra:
            data[typing.cast(str, self.var_keyword)] = extra
        return data

    def positional_loc(self, index: int) -> tuple[str | int, ...]:
        """Locate the argument passed at `index`: its parameter, or `*args`' name and place."""
        if index < len(self.positional):
            return (self.positional[index],)
        return (self.var_positional or "args", index - len(self.positional))

    def _reject(self, problem: str) -> typing.NoReturn:
        raise exceptions.InvalidTask(
            f"Task '{self.task_path}' {problem}.",
            task_path=self.task_path,
            errors=[{"type": "arguments", "loc": (), "msg": problem, "input": None}],
        )

    def _split(
        self, values: dict[str, Any], positional_count: int
    ) -> tuple[list[Any], dict[str, Any]]:
        """Turn validated values back into positional and keyword arguments.

        `values` holds the arguments passed positionally first (they are the first
        parameters, and both the bound call and pydantic's output keep that order).
        """
        if self.var_positional is None and self.var_keyword is None:
            ordered = list(values.values())
            if len(ordered) == positional_count:
                return ordered, {}
            keywords = values.copy()
            for name in self.positional[:positional_count]:
                del keywords[name]
            return ordered[:positional_count], keywords
        passed_positionally = self.positional[:positional_count]
        args = [values[name] for name in passed_positionally]
        kwargs = {
            name: value
            for name, value in values.items()
            if name not in passed_positionally
            and name != self.var_positional
            and name != self.var_keyword
        }
        if self.var_positional is not None and self.var_positional in values:
            args.extend(values[self.var_positional])
        if self.var_keyword is not None and self.var_keyword in values:
            kwargs.update(values[self.var_keyword])
        return args, kwargs

    def _validate(self, data: dict[str, Any], *, strict: bool, what: str) -> dict[str, Any]:
        models = self._models or self.build()
        try:
            if strict:
                validated: dict[str, Any] = models.validate_arguments(data, **_fidelity.STRICT)
            else:
                validated = models.validate_arguments(data, **_LOAD)
        except ValidationError as error:
            details = error.errors(include_url=False)
            lines = "\n".join(f"  - {line}" for line in describe_errors(details))
            raise exceptions.InvalidTask(
                f"Invalid {what} for task '{self.task_path}':\n{lines}",
                task_path=self.task_path,
                errors=details,
            ) from None
        return validated

    def bind_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> BoundCall:
        """Validate a call strictly, as at enqueue, and return its typed and JSON forms."""
        validated = self._validate(self._bind(args, kwargs), strict=True, what="arguments")
        models = self._models or self.build()
        if models.scan_names:
            self._refuse_unfaithful(validated, models.scan_names)
        try:
            dump = models.dump_arguments
            dumped = validated if models.all_native else dump(validated, **_fidelity.DUMP)
        except _UNWRITABLE as error:
            raise exceptions.InvalidTask(
                f"Invalid arguments for task '{self.task_path}': they cannot be written as "
                f"JSON ({_why_unwritable(error)}); send values JSON can hold unchanged.",
                task_path=self.task_path,
            ) from None
        return self._bound(len(args), validated, dumped, models.may_hold_nan)

    def _bound(
        self,
        positional_count: int,
        values: dict[str, Any],
        json_values: dict[str, Any],
        may_hold_nan: bool,
    ) -> BoundCall:
        typed_args, typed_kwargs = self._split(values, positional_count)
        json_args, json_kwargs = self._split(json_values, positional_count)
        return BoundCall(
            typed_args, typed_kwargs, {"args": json_args, "kwargs": json_kwargs}, may_hold_nan
        )

    def bind_calls(self, calls: Sequence[Call]) -> list[BoundCall]:
        """Validate many calls as `bind_call` does each, with one pydantic call for all.

        If any call is invalid, raise `InvalidTask` naming each bad call by its index.
        """
        bound, problems = self.try_bind_calls(calls)
        if problems:
            raise calls_invalid(self.task_path, problems)
        return typing.cast(list[BoundCall], bound)

    def try_bind_calls(self, calls: Sequence[Call]) -> tuple[list[BoundCall | None], list[Problem]]:
        """Return each call bound as `bind_calls` does, None for a bad one, and the problems."""
        models = self._models or self.build()
        if models.row_types is not None:
            try:
                bound_tuples = self._bind_as_tuples(calls, models)
            except (exceptions.InvalidTask, ValidationError, *_UNWRITABLE):
                return self._bind_each(calls)
            if bound_tuples is not None:
                return typing.cast(list[BoundCall | None], bound_tuples), []
        names, bind = self.positional, self._bind
        count = len(names)
        try:
            # `_bind`'s first case inlined: a bulk enqueue's calls are mostly positional.
            data = [
                dict(zip(names, args, strict=False))
                if not kwargs and len(args) <= count
                else bind(args, kwargs)
                for args, kwargs in calls
            ]
            validated: list[dict[str, Any]] = models.many.validate_python(data, **_fidelity.STRICT)
            if models.scan_names:
                self._refuse_unfaithful_many(validated, models.scan_names)
            dumped: list[dict[str, Any]] = models.many.dump_python(validated, **_fidelity.DUMP)
        except (exceptions.InvalidTask, ValidationError, *_UNWRITABLE):
            # One call or more is bad: validate each alone to say which, and why.
            return self._bind_each(calls)
        bound = self._split_calls(calls, validated, dumped, models.may_hold_nan)
        return typing.cast(list[BoundCall | None], bound), []

    def _bind_as_tuples(self, calls: Sequence[Call], models: _Models) -> list[BoundCall] | None:
        """Bind calls that pass every parameter without a dict per call; None if one does not.

        Calls that all split alike (the same arguments positionally, the others by
        keyword) validate as they are (`_Models.split_at`); others as one tuple each
        (`_Models.rows`). Raise as pydantic or `_refuse_unfaithful_values` does if a call
        is bad; the caller then binds each call alone to say which.
        """
        may_hold_nan = models.may_hold_nan
        positions = [(self.names.index(name), name) for name in models.scan_names]
        passed = self._split_alike(calls)
        if passed is not None:
            adapter = models.split_at(passed)
            split: list[tuple[tuple[Any, ...], dict[str, Any]]] = adapter.validate_python(
                calls if type(calls) is list else list(calls), **_fidelity.STRICT
            )
            if positions:
                self._refuse_unfaithful_columns(
                    (
                        [args[index] for args, _ in split]
                        if index < passed
                        else [kwargs[name] for _, kwargs in split],
                        name,
                    )
                    for index, name in positions
                )
            if all(models.native[passed:]):
                # The keywords are their own JSON form: dump the positional part only.
                return self._bound_native_keywords(split, models, passed)
            dumped_split: list[list[Any]] = adapter.dump_python(split, **_fidelity.DUMP)
            return [
                _new_bound(
                    BoundCall,
                    (list(args), kwargs, {"args": json[0], "kwargs": json[1]}, may_hold_nan),
                )
                for (args, kwargs), json in zip(split, dumped_split, strict=True)
            ]
        rows = self._rows(calls)
        if rows is None:
            return None
        validated: list[tuple[Any, ...]] = models.rows.validate_python(rows, **_fidelity.STRICT)
        if positions:
            self._refuse_unfaithful_columns(
                ([row[index] for row in validated], name) for index, name in positions
            )
        if models.all_native:  # the values are their own JSON form: no dump
            return self._split_rows(calls, validated, None, may_hold_nan)
        dumped: list[list[Any]] = models.rows.dump_python(validated, **_fidelity.DUMP)
        return self._split_rows(calls, validated, dumped, may_hold_nan)

    def _bound_native_keywords(
        self,
        split: list[tuple[tuple[Any, ...], dict[str, Any]]],
        models: _Models,
        passed: int,
    ) -> list[BoundCall]:
        """Bind split calls whose keyword values are their own JSON form (`_json_native`).

        Each payload holds the validated keywords dict itself, and the positional
        arguments dumped (or, when they too are native, the same list as the typed ones):
        skipping the keywords' dump is most of the dump's time (a `TypedDict`'s costs
        about five times a tuple's in pydantic).
        """
        may_hold_nan = models.may_hold_nan
        if all(models.native[:passed]):
            bound: list[BoundCall] = []
            for args, kwargs in split:
                typed_args = list(args)
                payload = {"args": typed_args, "kwargs": kwargs}
                bound.append(_new_bound(BoundCall, (typed_args, kwargs, payload, may_hold_nan)))
            return bound
        dumped: list[list[Any]] = models.leading(passed).dump_python(
            [args for args, _ in split], **_fidelity.DUMP
        )
        return [
            _new_bound(
                BoundCall, (list(args), kwargs, {"args": json, "kwargs": kwargs}, may_hold_nan)
            )
            for (args, kwargs), json in zip(split, dumped, strict=True)
        ]

    def _split_alike(self, calls: Sequence[Call]) -> int | None:
        """Return how many arguments every call passes positionally, if all split alike.

        That is: each passes the same number of arguments in a tuple, and one keyword in
        a dict per other parameter (at least one, none positional-only). None otherwise.
        """
        if not calls:
            return None
        passed = len(calls[0][0])
        keywords = len(self.names) - passed
        if keywords < 1 or passed < len(self.positional_only) or passed > len(self.positional):
            return None
        for args, kwargs in calls:
            if (
                type(args) is not tuple
                or type(kwargs) is not dict
                or len(args) != passed
                or len(kwargs) != keywords
            ):
                return None
        return passed

    def _rows(self, calls: Sequence[Call]) -> list[tuple[Any, ...]] | None:
        """Return each call's arguments as a tuple in parameter order, or None.

        None unless every call passes every parameter, as Python would bind it: its
        positional arguments first, then keywords naming exactly the other parameters
        (none of them positional-only). Otherwise the calls bind as dicts (`_bind`),
        which also applies defaults and says what is wrong with a call.
        """
        names = self.names
        count, first_keyword = len(names), len(self.positional_only)
        most_positional = len(self.positional)
        keywords = self._keywords_after
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        for args, kwargs in calls:
            passed = len(args)
            if not kwargs:
                if passed != count or passed > most_positional:
                    return None
                append(args if type(args) is tuple else tuple(args))
                continue
            if passed < first_keyword or passed > most_positional:
                return None
            if passed + len(kwargs) != count:
                return None
            try:
                append((*args, *keywords[passed](kwargs)))
            except KeyError:
                return None
        return rows

    def _split_rows(
        self,
        calls: Sequence[Call],
        validated: list[tuple[Any, ...]],
        dumped: list[list[Any]] | None,
        may_hold_nan: bool,
    ) -> list[BoundCall]:
        """Turn validated rows back into each call's positional and keyword arguments.

        `dumped` holds each row's JSON form, or is None when the validated values are
        their own (`_Models.native`): each payload then holds the typed containers.
        """
        names = self.names
        bound: list[BoundCall] = []
        append = bound.append
        rows = zip(calls, validated, validated if dumped is None else dumped, strict=True)
        for (args, kwargs), values, json_values in rows:
            if not kwargs:
                typed_args = list(values)
                payload = {"args": typed_args if dumped is None else json_values, "kwargs": {}}
                append(_new_bound(BoundCall, (typed_args, {}, payload, may_hold_nan)))
                continue
            passed = len(args)
            keywords = names[passed:]
            typed_args = list(values[:passed])
            typed_kwargs = dict(zip(keywords, values[passed:], strict=True))
            if dumped is None:
                payload = {"args": typed_args, "kwargs": typed_kwargs}
            else:
                payload = {
                    "args": json_values[:passed],
                    "kwargs": dict(zip(keywords, json_values[passed:], strict=True)),
                }
            append(_new_bound(BoundCall, (typed_args, typed_kwargs, payload, may_hold_nan)))
        return bound

    def _split_calls(
        self,
        calls: Sequence[Call],
        validated: list[dict[str, Any]],
        dumped: list[dict[str, Any]],
        may_hold_nan: bool,
    ) -> list[BoundCall]:
        if self.var_positional is not None or self.var_keyword is not None:
            return [
                self._bound(len(args), values, json_values, may_hold_nan)
                for (args, _), values, json_values in zip(calls, validated, dumped, strict=True)
            ]
        # The common call passes every argument positionally: `_split` inlined, since this
        # loop is a fifth of a bulk enqueue's Python time.
        bound: list[BoundCall] = []
        append = bound.append
        for (args, kwargs), values, json_values in zip(calls, validated, dumped, strict=True):
            if kwargs or len(args) != len(values):
                append(self._bound(len(args), values, json_values, may_hold_nan))
                continue
            payload = {"args": list(json_values.values()), "kwargs": {}}
            append(_new_bound(BoundCall, (list(values.values()), {}, payload, may_hold_nan)))
        return bound

    def _bind_each(self, calls: Sequence[Call]) -> tuple[list[BoundCall | None], list[Problem]]:
        bound: list[BoundCall | None] = []
        problems: list[Problem] = []
        for index, (args, kwargs) in enumerate(calls):
            try:
                bound.append(self.bind_call(args, kwargs))
            except exceptions.InvalidTask as error:
                bound.append(None)
                problems.append((index, error))
        return bound, problems

    def _refuse_unfaithful(self, validated: dict[str, Any], names: tuple[str, ...]) -> None:
        self._refuse_unfaithful_many([validated], names)

    def _refuse_unfaithful_many(
        self, validated: list[dict[str, Any]], names: tuple[str, ...]
    ) -> None:
        # absent: not passed, the default stays
        self._refuse_unfaithful_values(
            (values.get(name), name) for values in validated for name in names
        )

    def _refuse_unfaithful_columns(self, columns: Iterable[tuple[list[Any], str]]) -> None:
        """Refuse as `_refuse_unfaithful_values` does, given one parameter's values at a time.

        A column of UTC or naive datetimes, or of `dict[str, V]` with ASCII keys (see
        `_Models.keys_only`), passes in one sweep; any other is checked value by value.
        """
        keys_only = (self._models or self.build()).keys_only
        is_faithful_datetime = _fidelity.is_faithful_datetime
        for values, name in columns:
            if name in keys_only:
                if _fidelity.ascii_keys(values):
                    continue
            elif all(map(is_faithful_datetime, values)):
                continue
            self._refuse_unfaithful_values((value, name) for value in values)

    def _refuse_unfaithful_values(self, named_values: Iterable[tuple[Any, str]]) -> None:
        """Raise `InvalidTask` for the first value JSON would change; each comes with its name."""
        scalars, is_faithful_datetime = _fidelity.SCALARS, _fidelity.is_faithful_datetime
        keys_only = (self._models or self.build()).keys_only
        for value, name in named_values:
            if type(value) in scalars or is_faithful_datetime(value):
                continue
            if name in keys_only and type(value) is dict and _fidelity.ascii_keys((value,)):
                continue
            problem = _fidelity.find_unfaithful(value, name)
            if problem is None:
                continue
            raise exceptions.InvalidTask(
                f"Invalid arguments for task '{self.task_path}':\n  - {problem}.",
                task_path=self.task_path,
                errors=[{"type": "json", "loc": (), "msg": problem, "input": None}],
            )

    def load_call(self, payload: Any) -> tuple[list[Any], dict[str, Any]]:
        """Validate a decoded payload leniently, as a worker does, into typed arguments."""
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("args"), list)
            or not isinstance(payload.get("kwargs"), dict)
        ):
            raise exceptions.InvalidTask(
                f"The stored arguments of task '{self.task_path}' are not an object with "
                f"an 'args' list and a 'kwargs' object (got {_short_repr(payload)}).",
                task_path=self.task_path,
            )
        args, kwargs = payload["args"], payload["kwargs"]
        validated = self._validate(self._bind(args, kwargs), strict=False, what="stored arguments")
        return self._split(validated, len(args))

    def dump_result(self, value: Any) -> Any:
        """Validate a return value strictly against the annotation; return its JSON form."""
        models = self.build()
        if value is None and models.returns_none:  # most tasks: no model round trip
            return None
        model = models.result
        try:
            instance = model.model_validate({"value": value}, **_fidelity.STRICT)
        except ValidationError as error:
            details = error.errors(include_url=False)
            inside = [{**detail, "loc": detail["loc"][1:]} for detail in details]
            problems = "\n".join(f"  - {line}" for line in describe_errors(inside, "return value"))
            raise exceptions.InvalidTask(
                f"Task '{self.task_path}' returned a value that does not match its return "
                f"annotation:\n{problems}",
                task_path=self.task_path,
                errors=details,
            ) from None
        try:
            return instance.model_dump(**_fidelity.DUMP)["value"]
        except _UNWRITABLE as error:
            raise exceptions.InvalidTask(
                f"Task '{self.task_path}' returned a value that cannot be written as JSON: "
                f"{_why_unwritable(error)}.",
                task_path=self.task_path,
            ) from None

    def load_result(self, value: Any) -> Any:
        """Validate a decoded return value leniently into the declared return type."""
        models = self.build()
        if value is None and models.returns_none:
            return None
        result = models.result
        try:
            loaded = result.model_validate({"value": value}, **_LOAD)
        except ValidationError as error:
            inside = [{**d, "loc": d["loc"][1:]} for d in error.errors(include_url=False)]
            problems = "\n".join(f"  - {line}" for line in describe_errors(inside, "return value"))
            raise exceptions.InvalidTask(
                f"The stored return value of task '{self.task_path}' cannot be decoded:\n"
                + problems,
                task_path=self.task_path,
            ) from None
        return loaded.value  # type: ignore[attr-defined]


_UNWRITABLE = (PydanticSerializationError, UnicodeDecodeError)
"""What pydantic raises for a validated value it cannot write as JSON: bytes that are not
UTF-8 text raise `UnicodeDecodeError`, since JSON holds `bytes` as text."""


def _why_unwritable(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return (
            "bytes that are not UTF-8 text, which JSON holds bytes as; send other bytes "
            "as text, base64-encoded for instance"
        )
    return str(error)


def calls_invalid(task_path: str, problems: Sequence[Problem]) -> exceptions.InvalidTask:
    """Return one `InvalidTask` for the bad calls of a bulk enqueue, each named by index."""
    lines = [f"call {index}: {error}".replace("\n", "\n  ") for index, error in problems]
    errors = [
        {**detail, "loc": ("call", index, *detail.get("loc", ()))}
        for index, error in problems
        for detail in error.errors
    ]
    return exceptions.InvalidTask(
        f"{len(problems)} of the calls to task '{task_path}' are invalid, so none was "
        "enqueued:\n" + "\n".join(lines),
        task_path=task_path,
        errors=errors,
    )


_cache: dict[tuple[Callable[..., Any], bool], TaskSignature] = {}


def signature_of(func: Callable[..., Any], *, takes_context: bool, task_path: str) -> TaskSignature:
    """Return the signature of a task function, building it on first request."""
    key = (func, takes_context)
    signature = _cache.get(key)
    if signature is None:
        signature = _cache[key] = TaskSignature(
            func, takes_context=takes_context, task_path=task_path
        )
    return signature

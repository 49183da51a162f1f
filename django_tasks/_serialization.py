"""The one JSON boundary: every backend encodes and decodes task data here.

Arguments are validated by the task's signature (`_signatures`) into JSON-compatible
values, and a backend's serializer turns those into JSON text. Nothing else in the
library calls a serializer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django_tasks import _signatures, exceptions, serializers


def _encode(serializer: serializers.Serializer, value: Any) -> bytes | str:
    data = serializer.dumps(value)
    # A serializer that returns text (the stdlib one, with ensure_ascii off) lets a lone
    # surrogate through, which no database can store as UTF-8: refuse it here, with a
    # reason, rather than at the INSERT or the worker's write. ASCII text is checked in
    # constant time.
    if isinstance(data, str) and not data.isascii():
        try:
            data.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"the text holds a lone surrogate ({data[error.start]!r}), which is not "
                "valid Unicode"
            ) from None
    return data


Loc = tuple[str | int, ...]
"""Where an argument is, as pydantic's errors say it: `("when",)`, `("rest", 0)`."""


def _located_arguments(
    payload: Mapping[str, Any], signature: _signatures.TaskSignature | None
) -> list[tuple[Loc, Any]]:
    """Locate each argument of a payload: a positional one by its parameter where known."""
    locate = signature.positional_loc if signature else _unknown_positional
    located: list[tuple[Loc, Any]] = [
        (locate(index), value) for index, value in enumerate(payload["args"])
    ]
    located.extend(((name,), value) for name, value in payload["kwargs"].items())
    return located


def _unknown_positional(index: int) -> Loc:
    return ("args", index)


def _find_unstorable_arguments(
    payload: Mapping[str, Any], signature: _signatures.TaskSignature | None
) -> list[tuple[Loc, str]]:
    """Return `(where, problem)` for each argument JSON storage would change."""
    found = (
        (loc, _signatures.find_unstorable(value, _signatures.location(loc)))
        for loc, value in _located_arguments(payload, signature)
    )
    return [(loc, problem) for loc, problem in found if problem]


def _find_unencodable(
    serializer: serializers.Serializer,
    payload: Mapping[str, Any],
    signature: _signatures.TaskSignature | None,
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for loc, value in _located_arguments(payload, signature):
        try:
            _encode(serializer, value)
        except (TypeError, ValueError) as error:
            problems.append((loc, _cannot_encode(_signatures.location(loc), serializer, error)))
    return problems


def _cannot_encode(name: str, serializer: serializers.Serializer, error: Exception) -> str:
    return f"'{name}': {type(serializer).__name__} cannot encode it ({error})"


def dumps_call(
    task_path: str,
    bound: _signatures.BoundCall,
    serializer: serializers.Serializer,
    signature: _signatures.TaskSignature | None = None,
) -> bytes | str:
    """Encode a validated call as JSON, or raise `InvalidTask` naming every argument JSON
    would change; `signature` names positional arguments by their parameters."""
    payload = bound.payload
    problems = _find_unstorable_arguments(payload, signature) if bound.may_hold_nan else []
    data: bytes | str = b""
    if not problems:
        try:
            data = _encode(serializer, payload)
        except (TypeError, ValueError) as error:
            problems = _find_unencodable(serializer, payload, signature) or [
                ((), _cannot_encode("arguments", serializer, error))
            ]
    if not problems and _has_nul_escape(data):
        problems = _find_unstorable_arguments(payload, signature)
    if problems:
        lines = "".join(f"\n  - {problem}" for _, problem in problems)
        values = "a value" if len(problems) == 1 else "values"
        raise exceptions.InvalidTask(
            f"Invalid arguments for task '{task_path}':{lines}; "
            f"send {values} JSON can hold unchanged.",
            task_path=task_path,
            errors=[
                {"type": "json", "loc": loc, "msg": problem, "input": None}
                for loc, problem in problems
            ],
        )
    return data


def dumps_calls(
    task_path: str,
    calls: list[_signatures.BoundCall],
    serializer: serializers.Serializer,
    signature: _signatures.TaskSignature | None = None,
) -> tuple[list[bytes | str], list[_signatures.Problem]]:
    """Encode many validated calls as `dumps_call` does each.

    Return the encoded calls and, by index, the `InvalidTask` of each that `dumps_call`
    refuses. The usual call (bytes without a NUL escape, or ASCII text without one) is
    checked here, in one loop; any other (NaN-capable models, non-ASCII text) goes
    through `dumps_call`, which encodes it again.

    Bytes come back as text (see `to_keep`): a bulk enqueue keeps every call's JSON
    until the batch is stored.
    """
    dumps = serializer.dumps
    encoded: list[bytes | str] = []
    problems: list[_signatures.Problem] = []
    for index, bound in enumerate(calls):
        if not bound.may_hold_nan:
            try:
                data = dumps(bound.payload)
            except (TypeError, ValueError):
                pass
            else:
                # Non-ASCII text needs `_encode`'s surrogate check: `dumps_call` runs it.
                usual = isinstance(data, bytes) or data.isascii()
                if usual and not _has_nul_escape(data):
                    encoded.append(to_keep(data))
                    continue
        try:
            encoded.append(to_keep(dumps_call(task_path, bound, serializer, signature)))
        except exceptions.InvalidTask as error:
            problems.append((index, error))
    return encoded, problems


def to_keep(data: bytes | str) -> bytes | str:
    """Return encoded JSON in the form to keep in memory until it is stored: text.

    Each `bytes` that orjson returns keeps the whole block it was written into, about
    4 KB (4 MB of memory per 1,000 kept, measured, against 0.26 MB for the same JSON as
    `str`): a 10,000-call bulk enqueue peaked 58 MB above its start with them, 21 MB with
    text. Text is what the database backend binds anyway. Bytes that are not UTF-8 (a
    project's serializer) stay as they are.
    """
    if isinstance(data, bytes):
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data
    return data


def _has_nul_escape(data: bytes | str) -> bool:
    # Both shipped serializers write U+0000 as the escape \u0000; the exact check runs
    # only when the fast one hits, since a literal backslash can also produce it.
    return (b"\\u0000" in data) if isinstance(data, bytes) else ("\\u0000" in data)


def loads_call(
    signature: _signatures.TaskSignature,
    data: bytes | str,
    serializer: serializers.Serializer,
) -> tuple[list[Any], dict[str, Any]]:
    """Decode stored JSON into the typed arguments the task function receives."""
    try:
        payload = serializer.loads(data)
    except (TypeError, ValueError) as error:
        raise exceptions.InvalidTask(
            f"The stored arguments of task '{signature.task_path}' are not valid JSON: {error}",
            task_path=signature.task_path,
        ) from None
    return signature.load_call(payload)


def dumps_result(
    signature: _signatures.TaskSignature, value: Any, serializer: serializers.Serializer
) -> bytes | str:
    """Validate a return value against the annotation and encode it as JSON."""
    jsonable = signature.dump_result(value)
    problem = _signatures.find_unstorable(jsonable, "return value")
    if problem is None:
        try:
            return _encode(serializer, jsonable)
        except (TypeError, ValueError) as error:
            problem = f"{type(serializer).__name__} cannot encode it ({error})"
    raise exceptions.InvalidTask(
        f"Task '{signature.task_path}' returned a value JSON cannot hold unchanged: {problem}",
        task_path=signature.task_path,
    )


def loads_result(
    signature: _signatures.TaskSignature,
    data: bytes | str | None,
    serializer: serializers.Serializer,
) -> Any:
    """Decode a stored return value into the task's declared return type."""
    return None if data is None else signature.load_result(serializer.loads(data))


def loads_json(data: bytes | str, serializer: serializers.Serializer) -> Any:
    """Decode plain JSON data."""
    return serializer.loads(data)

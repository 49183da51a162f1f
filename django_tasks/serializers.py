"""JSON codecs a backend can use for payloads, chosen with `OPTIONS["SERIALIZER"]`.

A codec turns JSON-compatible Python values (dicts with string keys, lists, strings,
numbers, booleans and None) into JSON text and back. Anything richer travels as pydantic
annotations on the task's signature, never as codec hooks, so every codec gives the same
result. A codec must raise `TypeError` or `ValueError` for a value it cannot encode
faithfully rather than change it.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

import orjson


@runtime_checkable
class Serializer(Protocol):
    """Encode JSON-compatible values to JSON text, and decode them back."""

    def dumps(self, value: Any) -> bytes | str:
        """Return `value` as JSON; raise `TypeError` or `ValueError` if it cannot be."""
        ...

    def loads(self, data: bytes | str) -> Any:
        """Return the value that `data` holds; raise `ValueError` if it is not JSON."""
        ...


class OrjsonSerializer:
    """Encode with orjson: the default, and the fastest.

    orjson refuses integers outside the signed and unsigned 64-bit range, so such
    arguments are rejected at enqueue.

    `dumps` (compact UTF-8 JSON) and `loads` (from text or bytes) are orjson's own
    functions, with no method in between: a worker calls each once a task, and a bulk
    enqueue `dumps` once a call.
    """

    dumps = staticmethod(orjson.dumps)
    loads = staticmethod(orjson.loads)


class JsonSerializer:
    """Encode with the standard library's `json` module: no extra dependency."""

    def dumps(self, value: Any) -> str:
        """Return `value` as compact JSON, refusing NaN and infinities."""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def loads(self, data: bytes | str) -> Any:
        """Decode JSON text or bytes, refusing NaN and infinities."""
        return json.loads(data, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")

"""Running the library's own statements: on SQLite, without rewriting their placeholders each time.

Django's SQLite cursor turns every statement's `%s` placeholders into sqlite3's `?` with
a regular expression whose look-behind (`(?<!%)%s`) makes it try a match at every
character of the statement: for a single enqueue's INSERT, about 54,000 of its 514,000
instructions (counted with callgrind). The library's statements repeat their text (the
times and arguments are bound), so `execute` converts each text once, with Django's own
conversion, and keeps it. Counted the same way, that alone took a single enqueue on
SQLite from 514,000 instructions to 436,000 (15 % fewer); the worker runs two such
statements per claimed batch.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.db.backends.utils import CursorWrapper

_CONVERTED_MAX = 512
"""How many statement texts `_converted` keeps: one per task, queue and priority enqueued
one at a time, one per batch size in bulk, and the worker's few."""
_converted: dict[str, str] = {}
_vetted: tuple[Any, ...] = ()
"""The cursor methods last found to be Django's own (see `_djangos_own`)."""


def execute(cursor: Any, sql: str, params: Sequence[Any]) -> Any:
    """Run `sql`, written with Django's `%s` placeholders, as `cursor.execute(sql, params)`.

    On SQLite through Django's own cursor classes, the statement runs on the sqlite3
    cursor inside the same checks `CursorWrapper` makes (no statement in a transaction
    that must roll back; the driver's errors turned into `django.db`'s), with its `?`
    form converted once per text. Anything that watches statements sees this one as
    usual, because it then takes Django's path: a debug cursor (`DEBUG`,
    `CaptureQueriesContext`, `assertNumQueries`), an `execute_wrapper`, a cursor class
    a project or a tool put in place of Django's, or a tool that replaced the cursor
    classes' `execute` methods (as error trackers' SQL spans do). So does every other
    database.
    """
    connection = cursor.db
    if (
        type(cursor) is not CursorWrapper
        or connection.vendor != "sqlite"
        or connection.execute_wrappers
        or not apps.ready
    ):
        return cursor.execute(sql, params)
    global _vetted
    SQLiteCursorWrapper = _sqlite_cursor_class()  # Django's class
    driver_cursor = cursor.cursor
    if type(driver_cursor) is not SQLiteCursorWrapper:
        return cursor.execute(sql, params)
    methods = (
        CursorWrapper.execute,
        CursorWrapper._execute,  # type: ignore[attr-defined]
        SQLiteCursorWrapper.execute,
    )
    if methods != _vetted:
        if not all(map(_djangos_own, methods)):
            return cursor.execute(sql, params)
        _vetted = methods
    converted = _converted.get(sql)
    if converted is None:
        converted = driver_cursor.convert_query(sql)
        if len(_converted) >= _CONVERTED_MAX:
            _converted.clear()
        _converted[sql] = converted
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        # sqlite3's own execute, past the subclass's per-call conversion.
        return super(SQLiteCursorWrapper, driver_cursor).execute(converted, params)


@functools.cache
def _sqlite_cursor_class() -> type[Any]:
    """Return Django's SQLite cursor class, imported once (an import statement per
    statement cost 0.7 µs) and only where SQLite is in use."""
    from django.db.backends.sqlite3.base import SQLiteCursorWrapper

    return SQLiteCursorWrapper


def _djangos_own(method: Any) -> bool:
    """Tell whether `method` is the function Django's source defines, not a replacement.

    A replacement is a function of another module, unless it copies the original's name
    and module onto itself (`functools.wraps`) or hands attribute reads through to it
    (`wrapt`); then its code object's file tells, or it is not a plain function, or it
    leaves `__wrapped__`. A method that fails the test only costs the
    statement the faster path.
    """
    if type(method) is not types.FunctionType or hasattr(method, "__wrapped__"):
        return False
    if not method.__module__.startswith("django.db.backends."):
        return False
    module = sys.modules.get(method.__module__)
    return module is not None and method.__code__.co_filename == getattr(module, "__file__", None)

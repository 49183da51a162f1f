"""The lean INSERT behind every enqueue: no model instances, one statement per batch.

One row: one INSERT that binds its id, times and arguments. Many rows: PostgreSQL
`COPY`, SQLite one INSERT per 1000 rows that binds two values a row, MariaDB/MySQL one
multi-row INSERT per 500 rows; all in one transaction.

The calls of one bulk enqueue differ only in their id and arguments: every other
column is worked out once per task and enqueue time. On SQLite those shared columns
are written into the statement as literals, and each row binds only its id and
arguments: a bulk INSERT there costs about half of binding thirteen values per row. On
PostgreSQL they are formatted once into the text that `COPY` reads.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import connections, transaction
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Field
from django.utils import timezone

from django_tasks import results
from django_tasks.backends.base import collection_paused
from django_tasks.backends.database import statements
from django_tasks.backends.database.claims import field_adapter
from django_tasks.backends.database.models import DBTaskResult, fields_by_name
from django_tasks.tasks import registered_task

COLUMNS = (
    "id",
    "status",
    "task_path",
    "backend_name",
    "queue_name",
    "priority",
    "run_after",
    "ready_at",
    "enqueued_at",
    "args_kwargs",
    "retry",
    "errors",
    "worker_ids",
)
ROWS_PER_STATEMENT = 500
"""Rows per multi-row INSERT on MariaDB and MySQL."""
CHUNK = 1000
"""Rows per SQLite INSERT (fewer if the connection allows fewer bound values); rows
formatted at a time for `COPY`."""
READY = results.TaskResultStatus.READY.value


Prepared = tuple[results.TaskResult[Any], bytes | str]
"""A validated call: its READY result and its JSON payload."""
Shared = tuple[Any, ...]
"""The columns but `id` and `args_kwargs`, in `COLUMNS` order, as adapted for the database."""
Calls = list[tuple[Any, str]]
"""The `(id, args_kwargs)` of each call that shares them."""
Groups = list[tuple[Shared, Calls]]
"""The calls of a bulk enqueue by the columns they share."""


def insert_ready(alias: str, backend_name: str, enqueued: Sequence[Prepared]) -> None:
    """Insert one READY row per enqueued call, each field adapted as the ORM would.

    The calls are validated and encoded before: no code of the project (a validator, a
    serializer) runs while a statement, such as an open `COPY`, holds the connection.
    """
    connection = connections[alias]
    if not enqueued:
        return
    many = len(enqueued) > 1
    if many and _can_copy(connection):
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            _copy(connection, cursor, backend_name, enqueued)
        return
    if not many:  # one row: one statement, in autocommit
        with connection.cursor() as cursor:
            [(shared, [call])] = _group(connection, backend_name, enqueued, as_text=True)
            if not _insert_one(connection, cursor, shared, call):
                _insert_rows(
                    connection, cursor, _group(connection, backend_name, enqueued, as_text=False)
                )
        return
    insert_ready_chunks(alias, backend_name, [enqueued])


def insert_ready_chunks(
    alias: str, backend_name: str, chunks: Iterable[Sequence[Prepared]]
) -> None:
    """Insert the calls of each chunk in turn, all in one transaction: SQLite, MySQL, MariaDB.

    `chunks` may prepare each chunk as it is asked for (see `overlap`); if it raises,
    the transaction rolls back and no call is stored.
    """
    connection = connections[alias]
    insert = _insert_values if connection.vendor == "sqlite" else _insert_rows
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        for enqueued in chunks:
            insert(connection, cursor, _group(connection, backend_name, enqueued, as_text=False))


def _insert_one(connection: Any, cursor: Any, shared: Shared, call: tuple[Any, str]) -> bool:
    """Insert one row binding only its id, arguments and times; tell whether it could.

    The columns shared by every call of the task (its path, queue, priority, the empty
    lists...) are written into the statement as literals where they have one (see
    `_written`). On PostgreSQL the statement then costs this process a quarter less
    than one binding all thirteen (0.15 against 0.20 ms of CPU, measured; 0.02-0.05 ms
    of a whole enqueue's 0.22-0.30): psycopg adapts each bound value, and the JSON
    columns with the standard library's `json`. The times stay bound, so the
    statement's text is the same for every call of a task and SQLite's statement cache
    keeps it prepared. A shared value with no literal (a retry policy given with
    `using()` whose JSON holds a backslash, say) makes this return False, and the
    caller binds every column.
    """
    # Which times are bound (not NULL) takes their place in the key of the statement.
    key = tuple(
        value is not None if index in _SHARED_TIMES else value for index, value in enumerate(shared)
    )
    try:
        hash(key)
    except TypeError:  # an unhashable shared value (an adapter object) has no literal either
        return False
    sql = _one_row_sql(*_table_and_columns(connection), key, connection.vendor == "sqlite")
    if sql is None:
        return False
    result_id, data = call
    times = [shared[index] for index in _SHARED_TIMES if key[index]]
    params = [result_id, *times, data]
    statements.execute(cursor, sql, params)
    return True


_SHARED_TIMES = tuple(
    index
    for index, name in enumerate(COLUMNS[1:9])
    if name in ("run_after", "ready_at", "enqueued_at")
)
"""Where the times are in `Shared`: they come before `args_kwargs`, so bound in order."""


@functools.lru_cache(maxsize=256)
def _one_row_sql(table: str, columns: str, key: tuple[Any, ...], sqlite: bool) -> str | None:
    """Return the INSERT of one row for the shared values in `key`, or None if one has no literal.

    `key` is `Shared` with each time replaced by whether it is bound: the statement is
    written once per task, queue, priority and policy, not per enqueue.
    """
    literals = tuple(None if index in _SHARED_TIMES else value for index, value in enumerate(key))
    written = _written(literals, null="NULL", text=_sqlite_literal if sqlite else _sql_literal)
    if written is None:
        return None
    for index in _SHARED_TIMES:
        if key[index]:
            written[index] = "%s"
    values = ", ".join(["%s", *written[:8], "%s", *written[8:]])
    return f"INSERT INTO {table} ({columns}) VALUES ({values})"


def _insert_values(connection: Any, cursor: Any, groups: Groups) -> None:
    """SQLite: one INSERT per `CHUNK` rows, each row binding its id and arguments.

    A statement binds two values a row, within the connection's limit on bound values
    (32,766 by default since SQLite 3.32, 999 before; 999 is assumed where the driver
    cannot tell).
    """
    getlimit = getattr(connection.connection, "getlimit", None)  # not on every driver
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else 999
    chunk = max(1, min(CHUNK, limit // 2))
    for shared, calls in groups:
        literals = _written(shared, null="NULL", text=_sqlite_literal)
        if literals is None:
            cursor.executemany(_insert_sql(connection), _rows(shared, calls))
            continue
        for start in range(0, len(calls), chunk):
            some = calls[start : start + chunk]
            sql = _sqlite_values_sql(connection, literals, len(some))
            statements.execute(cursor, sql, _flat(some))


def _insert_rows(connection: Any, cursor: Any, groups: Groups) -> None:
    """One INSERT per 500 rows, binding every column: MariaDB and MySQL, psycopg 2."""
    rows = [row for shared, calls in groups for row in _rows(shared, calls)]
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        some = rows[start : start + ROWS_PER_STATEMENT]
        params = [value for row in some for value in row]
        cursor.execute(_insert_sql(connection, len(some)), params)


def _group(
    connection: Any,
    backend_name: str,
    enqueued: Sequence[Prepared],
    *,
    as_text: bool,
) -> Groups:
    """Group the calls by the columns they share: one group per task and enqueue time."""
    fields = fields_by_name()
    native_uuid = connection.features.has_native_uuid_field
    empty_list = "[]" if as_text else fields["errors"].get_db_prep_save([], connection)
    groups: dict[tuple[int, datetime | None], tuple[Any, Shared, Calls]] = {}
    task: Any = None
    now: datetime | None = None
    calls: Calls = []
    # Library code only (see collection_paused); a single row is not worth the switch.
    with collection_paused() if len(enqueued) > 1 else contextlib.nullcontext():
        for result, data in enqueued:
            # The calls of a bulk enqueue share their task and time: look up only on change.
            if result.task is not task or result.enqueued_at is not now:
                task, now = result.task, result.enqueued_at
                group = groups.get((id(task), now))
                if group is None or group[0] is not task:
                    shared = _shared(connection, task, backend_name, now, empty_list, as_text)
                    group = groups[(id(task), now)] = (task, shared, [])
                calls = group[2]
            result_id = result.id if native_uuid else result.id.replace("-", "")
            calls.append((result_id, data.decode() if isinstance(data, bytes) else data))
    return [(shared, calls) for _, shared, calls in groups.values()]


def _shared(
    connection: Any,
    task: Any,
    backend_name: str,
    enqueued_at: datetime | None,
    empty_list: Any,
    as_text: bool,
) -> Shared:
    fields = fields_by_name()
    now = enqueued_at or timezone.now()
    run_after = task.run_after
    if isinstance(run_after, timedelta):  # prepare() resolves it; kept for types
        run_after = now + run_after

    lean = field_adapter(fields["ready_at"], connection)

    def adapt_time(value: datetime | None) -> Any:
        # Django's adapter, for less; a naive time (which only a caller of `prepare()`
        # can pass) goes through the field, which reads it in TIME_ZONE and warns.
        if value is not None and value.utcoffset() is None:
            return fields["ready_at"].get_db_prep_save(value, connection)
        return lean(value)

    enqueued = adapt_time(now)  # and when to run, unless run_after says
    return (
        READY,
        task.module_path,
        backend_name,
        task.queue_name,
        task.priority,
        adapt_time(run_after),
        enqueued if run_after is None else adapt_time(run_after),
        enqueued,
        _retry(fields, connection, task, as_text=as_text),
        empty_list,
        empty_list,
    )


def _rows(shared: Shared, calls: Calls) -> list[tuple[Any, ...]]:
    """Return the full rows, in `COLUMNS` order, of calls that share `shared`."""
    head, tail = shared[:8], shared[8:]
    return [(result_id, *head, data, *tail) for result_id, data in calls]


def _copy_text(shared: Shared, calls: Calls) -> str | None:
    """Return the rows of `calls` in `COPY`'s text format, or None if `shared` has no text form.

    Formatting the shared columns once and each row as one string costs this process
    about a fifth of what psycopg's `write_row` takes for the thirteen values of a row
    (0.7 against 3.3 µs, measured).
    """
    fields = _written(shared, null="\\N", text=_copy_escaped, time=datetime.isoformat)
    if fields is None:
        return None
    head, tail = "\t".join(fields[:8]), "\t".join(fields[8:])
    escaped = _copy_escaped
    return "".join([f"{row_id}\t{head}\t{escaped(data)}\t{tail}\n" for row_id, data in calls])


def _copy_escaped(text: str) -> str:
    """Escape `text` for a field of `COPY`'s text format: backslashes and line breaks."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\n" in text or "\r" in text or "\t" in text:
        text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return text


def _written(
    shared: Shared,
    *,
    null: str,
    text: Callable[[str], str | None],
    time: Callable[[datetime], str] | None = None,
) -> list[str] | None:
    """Return each shared value written out for a statement, or None if one cannot be.

    NULL becomes `null`, whole numbers their digits, text what `text` makes of it, and
    times what `time` makes of them; a value of another kind, or text that `text` turns
    down (None), has no written form.
    """
    written = []
    for value in shared:
        if value is None:
            written.append(null)
        elif type(value) is int:
            written.append(str(value))
        elif type(value) is str and (spelled := text(value)) is not None:
            written.append(spelled)
        elif time is not None and isinstance(value, datetime):
            written.append(time(value))
        else:
            return None
    return written


def _sqlite_literal(text: str) -> str | None:
    """Quote `text` for SQLite and Django's placeholders, or None if it holds a NUL."""
    if "\x00" in text:
        return None
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _sql_literal(text: str) -> str | None:
    """Quote `text` for PostgreSQL or MySQL, or None if it holds a NUL or a backslash.

    A backslash is an escape character in their string literals unless the session
    says otherwise (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`): text that
    holds one is bound instead.
    """
    if "\\" in text:
        return None
    return _sqlite_literal(text)


def _sqlite_values_sql(connection: Any, literals: list[str], rows: int) -> str:
    """Return an INSERT of `rows` rows that binds each one's id and arguments.

    The shared columns are `literals` (see `_written`; only text without NUL, whole
    numbers and NULL have one) in the statement, which reads the bound pairs from a
    `VALUES` list: per row, about 40 % less time than reading them from one JSON text
    with `json_each`, and half of binding all thirteen columns.
    """
    table, columns = _table_and_columns(connection)
    values = ", ".join(["column1", *literals[:8], "column2", *literals[8:]])
    pairs = ", ".join(["(%s, %s)"] * rows)
    return f"INSERT INTO {table} ({columns}) SELECT {values} FROM (VALUES {pairs})"


def _flat(calls: Calls) -> list[Any]:
    """Return the `(id, args_kwargs)` pairs of `calls` as one list of values."""
    return [value for call in calls for value in call]


def _retry(fields: dict[str, Field[Any, Any]], connection: Any, task: Any, *, as_text: bool) -> Any:
    """Return the stored form of a policy given with `using()`, or NULL for the task's own."""
    registered = registered_task(task.module_path)
    if task.retry is None or (registered is not None and registered.retry == task.retry):
        return None
    if as_text:
        try:
            return orjson.dumps(task.retry.to_json()).decode()
        except orjson.JSONEncodeError:
            # `max_attempts` beyond 64 bits: Django's adapter writes it (on PostgreSQL
            # not as text: the row then binds every column, or COPY adapts the value).
            pass
    return fields["retry"].get_db_prep_save(task.retry.to_json(), connection)


def _table_and_columns(connection: Any) -> tuple[str, str]:
    """Return the quoted table name and the quoted list of the columns an enqueue writes."""
    quoted = _quoted.get(connection.vendor)
    if quoted is None:
        quote = connection.ops.quote_name
        fields = fields_by_name()
        columns = ", ".join(quote(str(fields[name].column)) for name in COLUMNS)
        quoted = _quoted[connection.vendor] = (quote(DBTaskResult._meta.db_table), columns)
    return quoted


_quoted: dict[str, tuple[str, str]] = {}
"""`_table_and_columns` by database vendor: every single enqueue needs it."""


def _insert_sql(connection: Any, rows: int = 1) -> str:
    table, columns = _table_and_columns(connection)
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * rows)}"


def _can_copy(connection: Any) -> bool:
    """Tell whether `connection` is PostgreSQL through psycopg 3, which has `COPY` from Python."""
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


def _copy(connection: Any, cursor: Any, backend_name: str, enqueued: Sequence[Prepared]) -> None:
    """Load the rows with one `COPY ... FROM STDIN`, PostgreSQL's bulk path.

    Three to four times faster than one INSERT of arrays: Django's client-side binding
    would quote every value into the statement text. `COPY` fires the table's INSERT
    triggers, so workers are still notified. It shows in Django's query log (as
    `CaptureQueriesContext` and the debug toolbar read it) as one statement.

    The rows are formatted `CHUNK` calls at a time while the server stores the ones
    before: that formatting, about a seventh of a bulk enqueue's own time (profiled,
    3 arguments), overlaps with the server's work. Only the library's own formatting
    runs while `COPY` is open; the calls were validated and encoded before (see
    `insert_ready`). COPY reads JSON columns as text: no per-row JSON adapter.
    """
    table, columns = _table_and_columns(connection)
    sql = f"COPY {table} ({columns}) FROM STDIN"
    logged = (
        cursor.debug_sql(f"{sql} -- {len(enqueued)} rows")
        if isinstance(cursor, CursorDebugWrapper)
        else contextlib.nullcontext()
    )
    with logged, connection.wrap_database_errors, cursor.cursor.copy(sql) as copier:
        for start in range(0, len(enqueued), CHUNK):
            some = enqueued[start : start + CHUNK]
            for shared, calls in _group(connection, backend_name, some, as_text=True):
                text = _copy_text(shared, calls)
                if text is None:
                    for row in _rows(shared, calls):
                        copier.write_row(row)
                else:
                    copier.write(text)

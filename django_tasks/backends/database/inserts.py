"""The lean INSERT behind every enqueue: no model instances, one statement per batch.

One row: one INSERT. Many rows: PostgreSQL `COPY`, SQLite one prepared INSERT run per
row, MariaDB/MySQL one multi-row INSERT per 500 rows; all in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import connections, transaction
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Field
from django.utils import timezone

from django_tasks import results
from django_tasks.backends.base import collection_paused
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
READY = results.TaskResultStatus.READY.value


def insert_ready(
    alias: str,
    backend_name: str,
    enqueued: Sequence[tuple[results.TaskResult[Any], bytes | str]],
) -> None:
    """Insert one READY row per enqueued call, each field adapted as the ORM would."""
    connection = connections[alias]
    fields = fields_by_name()
    native_uuid = connection.features.has_native_uuid_field
    adapted: dict[datetime | None, Any] = {}

    def adapt_time(value: datetime | None) -> Any:
        # One batch shares a handful of times: adapt each once.
        if value not in adapted:
            adapted[value] = fields["ready_at"].get_db_prep_save(value, connection)
        return adapted[value]

    # COPY reads JSON columns as text: no per-row JSON adapter.
    copy = len(enqueued) > 1 and _can_copy(connection)
    empty_list = "[]" if copy else fields["errors"].get_db_prep_save([], connection)
    # The calls of a bulk enqueue share one task: its columns are worked out once.
    per_task: dict[int, tuple[Any, ...]] = {}
    rows = []
    # Library code only (see collection_paused); a single row is not worth the switch.
    with collection_paused() if len(enqueued) > 1 else contextlib.nullcontext():
        for result, data in enqueued:
            task = result.task
            now = result.enqueued_at or timezone.now()
            columns = per_task.get(id(task))
            if columns is None or columns[0] is not task:
                run_after = task.run_after
                if isinstance(run_after, timedelta):  # prepare() resolves it; kept for types
                    run_after = now + run_after
                columns = per_task[id(task)] = (
                    task,
                    (task.module_path, backend_name, task.queue_name, task.priority),
                    run_after,
                    _retry(fields, connection, task, as_text=copy),
                )
            _, names, run_after, retry = columns
            rows.append(
                (
                    result.id if native_uuid else result.id.replace("-", ""),
                    READY,
                    *names,
                    adapt_time(run_after),
                    adapt_time(run_after or now),
                    adapt_time(now),
                    data.decode() if isinstance(data, bytes) else data,
                    retry,
                    empty_list,
                    empty_list,
                )
            )
    if copy:
        _copy(alias, rows)
        return
    if connection.vendor == "sqlite" and len(rows) > 1:
        # One prepared statement run per row, all in C: faster than parsing long
        # multi-row statements, and SQLite has no round trips to save.
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.executemany(_insert_sql(connection), rows)
        return
    if len(rows) <= ROWS_PER_STATEMENT:
        _insert(alias, rows)
        return
    with transaction.atomic(using=alias):
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            _insert(alias, rows[start : start + ROWS_PER_STATEMENT])


def _retry(fields: dict[str, Field[Any, Any]], connection: Any, task: Any, *, as_text: bool) -> Any:
    """Return the stored form of a policy given with `using()`, or NULL for the task's own."""
    registered = registered_task(task.module_path)
    if task.retry is None or (registered is not None and registered.retry == task.retry):
        return None
    if as_text:
        return orjson.dumps(task.retry.to_json()).decode()
    return fields["retry"].get_db_prep_save(task.retry.to_json(), connection)


def _table_and_columns(connection: Any) -> tuple[str, str]:
    """Return the quoted table name and the quoted list of the columns an enqueue writes."""
    quote = connection.ops.quote_name
    fields = fields_by_name()
    columns = ", ".join(quote(str(fields[name].column)) for name in COLUMNS)
    return quote(DBTaskResult._meta.db_table), columns


def _insert_sql(connection: Any, rows: int = 1) -> str:
    table, columns = _table_and_columns(connection)
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * rows)}"


def _insert(alias: str, rows: list[tuple[Any, ...]]) -> None:
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection, len(rows)), [value for row in rows for value in row])


def _can_copy(connection: Any) -> bool:
    """Tell whether `connection` is PostgreSQL through psycopg 3, which has `COPY` from Python."""
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


def _copy(alias: str, rows: list[tuple[Any, ...]]) -> None:
    """Load any number of rows with one `COPY ... FROM STDIN`, PostgreSQL's bulk path.

    Three to four times faster than one INSERT of arrays: Django's client-side binding
    would quote every value into the statement text. `COPY` fires the table's INSERT
    triggers, so workers are still notified. It shows in Django's query log (as
    `CaptureQueriesContext` and the debug toolbar read it) as one statement.
    """
    connection = connections[alias]
    table, columns = _table_and_columns(connection)
    sql = f"COPY {table} ({columns}) FROM STDIN"
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        logged = (
            cursor.debug_sql(f"{sql} -- {len(rows)} rows")
            if isinstance(cursor, CursorDebugWrapper)
            else contextlib.nullcontext()
        )
        with logged, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)

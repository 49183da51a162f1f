"""The lean INSERT behind every enqueue: one multi-row statement, no model instances."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Field
from django.utils import timezone

from django_tasks import results
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

    empty_list = fields["errors"].get_db_prep_save([], connection)
    rows = []
    for result, data in enqueued:
        task = result.task
        now = result.enqueued_at or timezone.now()
        run_after = task.run_after
        if isinstance(run_after, timedelta):  # prepare() resolves it; this keeps types honest
            run_after = now + run_after
        rows.append(
            (
                uuid.UUID(result.id) if native_uuid else result.id.replace("-", ""),
                READY,
                task.module_path,
                backend_name,
                task.queue_name,
                task.priority,
                adapt_time(run_after),
                adapt_time(run_after or now),
                adapt_time(now),
                data.decode() if isinstance(data, bytes) else data,
                _retry(fields, connection, task),
                empty_list,
                empty_list,
            )
        )
    if connection.vendor == "postgresql" and len(rows) > 1:
        _insert_unnest(alias, rows)
        return
    if len(rows) <= ROWS_PER_STATEMENT:
        _insert(alias, rows)
        return
    with transaction.atomic(using=alias):
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            _insert(alias, rows[start : start + ROWS_PER_STATEMENT])


def _retry(fields: dict[str, Field[Any, Any]], connection: Any, task: Any) -> Any:
    """Return the stored form of a policy given with `using()`, or NULL for the task's own."""
    registered = registered_task(task.module_path)
    if task.retry is None or (registered is not None and registered.retry == task.retry):
        return None
    return fields["retry"].get_db_prep_save(task.retry.to_json(), connection)


def _insert(alias: str, rows: list[tuple[Any, ...]]) -> None:
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(DBTaskResult._meta.db_table)
    fields = fields_by_name()
    columns = ", ".join(quote(str(fields[name].column)) for name in COLUMNS)
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(rows))}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


_POSTGRES_TYPES = {
    "id": "uuid",
    "status": "text",
    "task_path": "text",
    "backend_name": "text",
    "queue_name": "text",
    "priority": "int",
    "run_after": "timestamptz",
    "ready_at": "timestamptz",
    "enqueued_at": "timestamptz",
    "args_kwargs": "text",
    "retry": "jsonb",
}


def _insert_unnest(alias: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert any number of rows with one statement of one array per column.

    psycopg adapts a list to an array in C, so this avoids parsing a statement with
    thousands of placeholders; the JSON columns are the same for every row.
    """
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = fields_by_name()
    table = quote(DBTaskResult._meta.db_table)
    typed = [name for name in COLUMNS if name in _POSTGRES_TYPES]
    columns = ", ".join(quote(str(fields[name].column)) for name in COLUMNS)
    arrays = ", ".join(f"%s::{_POSTGRES_TYPES[name]}[]" for name in typed)
    selected = ", ".join(
        f"r.{quote(name)}" if name in _POSTGRES_TYPES else "'[]'::jsonb" for name in COLUMNS
    )
    aliases = ", ".join(quote(name) for name in typed)
    sql = f"INSERT INTO {table} ({columns}) SELECT {selected} FROM unnest({arrays}) AS r({aliases})"
    positions = [COLUMNS.index(name) for name in typed]
    params = [[row[position] for row in rows] for position in positions]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)

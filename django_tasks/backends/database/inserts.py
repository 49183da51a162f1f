"""The lean INSERT behind every enqueue: one multi-row statement, no model instances."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Field

from django_tasks import results
from django_tasks.backends.database.models import DBTaskResult

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
    "errors",
    "worker_ids",
)
ROWS_PER_STATEMENT = 500


def insert_ready(
    alias: str,
    backend_name: str,
    prepared: Sequence[tuple[results.TaskResult[Any], bytes | str]],
    now: datetime,
) -> None:
    """Insert one READY row per prepared call, each field adapted as the ORM would."""
    connection = connections[alias]
    fields = _fields()

    def adapt(name: str, value: Any) -> Any:
        return fields[name].get_db_prep_save(value, connection)

    empty_list = adapt("errors", [])
    ready = adapt("status", results.TaskResultStatus.READY.value)
    enqueued_at = adapt("enqueued_at", now)
    rows = []
    for result, data in prepared:
        task = result.task
        run_after = task.run_after
        if isinstance(run_after, timedelta):  # prepare() resolves it; this keeps types honest
            run_after = now + run_after
        rows.append(
            (
                adapt("id", uuid.UUID(result.id)),
                ready,
                task.module_path,
                backend_name,
                task.queue_name,
                task.priority,
                adapt("run_after", run_after),
                adapt("ready_at", run_after or now),
                enqueued_at,
                data.decode() if isinstance(data, bytes) else data,
                empty_list,
                empty_list,
            )
        )
    if len(rows) <= ROWS_PER_STATEMENT:
        _insert(alias, rows)
        return
    with transaction.atomic(using=alias):
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            _insert(alias, rows[start : start + ROWS_PER_STATEMENT])


def _fields() -> dict[str, Field[Any, Any]]:
    return {field.name: field for field in DBTaskResult._meta.concrete_fields}


def _insert(alias: str, rows: list[tuple[Any, ...]]) -> None:
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(DBTaskResult._meta.db_table)
    fields = _fields()
    columns = ", ".join(quote(str(fields[name].column)) for name in COLUMNS)
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(rows))}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])

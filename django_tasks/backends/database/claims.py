"""The statements that move rows between workers: claim, renew, release, reclaim, finish.

Every write that changes who owns a row is guarded by the owner it expects (`worker_id`
and status RUNNING), so two workers can never both believe they hold the same row.
"""

from __future__ import annotations

import dataclasses
import operator
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import DateTimeField, Field, JSONField, Q, Value
from django.db.models.base import ModelState
from django.db.models.functions import Coalesce
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from django_tasks import exceptions
from django_tasks.backends.database import statements
from django_tasks.backends.database.models import DBTaskResult, fields_by_name
from django_tasks.results import TaskError, TaskResultStatus

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING
FAILED = TaskResultStatus.FAILED
WORKER_LOST = f"{exceptions.WorkerLost.__module__}.{exceptions.WorkerLost.__qualname__}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Which rows a worker serves: one backend, on one database, some queues (None: all)."""

    alias: str
    backend_name: str
    queues: tuple[str, ...] | None


def _ready_rows(scope: Scope, now: datetime) -> Any:
    rows = DBTaskResult.objects.using(scope.alias).filter(
        status=READY, backend_name=scope.backend_name, ready_at__lte=now
    )
    if scope.queues is not None:
        rows = rows.filter(queue_name__in=scope.queues)
    return rows.order_by("-priority", "ready_at")


def claim(scope: Scope, worker_id: str, limit: int, lease: timedelta) -> list[DBTaskResult]:
    """Mark up to `limit` due READY rows as RUNNING for `worker_id`, and return them.

    SQLite claims with one `UPDATE … RETURNING`, which its single writer makes atomic.
    PostgreSQL locks the rows with `SELECT … FOR UPDATE SKIP LOCKED` inside the same
    single statement; MySQL/MariaDB, which have no `UPDATE … RETURNING`, do it in a short
    transaction. Either way concurrent workers skip each other's rows, not wait.
    """
    now = timezone.now()
    if connections[scope.alias].vendor in ("sqlite", "postgresql"):
        rows = _claim_returning(scope, worker_id, limit, now, now + lease)
    else:
        rows = _claim_in_transaction(scope, worker_id, limit, now, now + lease)
    rows.sort(key=lambda row: (-row.priority, row.ready_at))
    return rows


def _claim_in_transaction(
    scope: Scope, worker_id: str, limit: int, now: datetime, expires: datetime
) -> list[DBTaskResult]:
    with transaction.atomic(using=scope.alias):
        ids = list(
            _ready_rows(scope, now)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        DBTaskResult.objects.using(scope.alias).filter(id__in=ids).update(
            status=RUNNING,
            worker_id=worker_id,
            lease_expires_at=expires,
            last_attempted_at=now,
            started_at=Coalesce("started_at", Value(now)),
        )
    return list(DBTaskResult.objects.using(scope.alias).filter(id__in=ids))


def _claim_returning(
    scope: Scope, worker_id: str, limit: int, now: datetime, expires: datetime
) -> list[DBTaskResult]:
    connection = connections[scope.alias]
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    table = quote(DBTaskResult._meta.db_table)
    queue_filter = ""
    set_params: list[Any] = [RUNNING, worker_id, adapt(expires), adapt(now), adapt(now)]
    pick_params: list[Any] = [READY, scope.backend_name, adapt(now)]
    if scope.queues is not None:
        queue_filter = f"AND queue_name IN ({', '.join(['%s'] * len(scope.queues))})"
        pick_params += list(scope.queues)
    pick_params.append(limit)
    pick = (
        f"SELECT id FROM {table} "
        f"WHERE status = %s AND backend_name = %s AND ready_at <= %s {queue_filter} "
        "ORDER BY priority DESC, ready_at LIMIT %s"
    )
    assignments = (
        "status = %s, worker_id = %s, lease_expires_at = %s, last_attempted_at = %s, "
        f"started_at = COALESCE({table}.started_at, %s)"
    )
    returning, returning_params = _returning(connection, table, now)
    if connection.vendor == "postgresql":
        # The ids as one array: the rows are then found by primary key. Joined to the
        # picked rows (a CTE or `IN`), the planner hashed them against a scan of the
        # whole table while it was small (tens of thousands of rows): 2.4 ms per claim
        # of 100 instead of 0.8.
        pick = f"ARRAY({pick} FOR UPDATE SKIP LOCKED)"
        sql = f"UPDATE {table} SET {assignments} WHERE id = ANY({pick}) RETURNING {returning}"
    else:
        sql = f"UPDATE {table} SET {assignments} WHERE id IN ({pick}) RETURNING {returning}"
    params = set_params + pick_params + returning_params
    rows = _instances(connection, scope.alias, sql, params)
    for row in rows:
        row.lease_expires_at = expires
        row.last_attempted_at = now
        row.started_at = row.started_at or now
        row.errors = row.errors or []
        row.worker_ids = row.worker_ids or []
    return rows


def _instances(
    connection: BaseDatabaseWrapper, alias: str, sql: str, params: list[Any]
) -> list[DBTaskResult]:
    """Run a statement that returns every column in field order; return its rows as models.

    What `DBTaskResult.objects.raw()` gives, in about half its time per row: the same
    converters Django applies (the database's, then the field's), found once per
    statement, run only on values that are not NULL (each of them returns NULL as it is), and
    `Model.from_db` for each row.

    A time is converted once per statement for each value read: the rows of one bulk
    enqueue share their `enqueued_at` and `ready_at`. Only times are shared between rows
    so; a JSON column's list is each row's own, as the row may change it.
    """
    table = DBTaskResult._meta.db_table
    converters = []  # found per statement: they belong to this connection
    names = []
    times: dict[Any, Any] = {}  # raw value -> converted; the time columns' only
    for index, field in enumerate(fields_by_name().values()):
        names.append(field.attname)
        column = field.get_col(table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, found, column, isinstance(field, DateTimeField)))
    with connection.cursor() as cursor:
        statements.execute(cursor, sql, params)
        fetched = cursor.fetchall()
    listened = pre_init.has_listeners(DBTaskResult) or post_init.has_listeners(DBTaskResult)
    build = DBTaskResult.from_db if listened else _from_db
    rows = []
    for values in map(list, fetched):
        for index, found, column, is_time in converters:
            value = values[index]
            if value is None:
                continue
            if is_time and value in times:
                values[index] = times[value]
                continue
            raw = value
            for convert in found:
                value = convert(value, column, connection)
            values[index] = value
            if is_time:
                times[raw] = value
        rows.append(build(alias, names, values))
    return rows


def _from_db(alias: str, names: list[str], values: list[Any]) -> DBTaskResult:
    """Return the model of a row, as `DBTaskResult.from_db` does when no one listens.

    `Model.__init__` sets the fields one by one and sends `pre_init` and `post_init`:
    4 µs a row, against 1 µs here (measured). Every field of the model is a plain column
    (no relation, file or generated field), so the instance's `__dict__` takes the values
    as they are; `_instances` uses `from_db` itself whenever a receiver listens.
    """
    row: DBTaskResult = DBTaskResult.__new__(DBTaskResult)
    attributes = row.__dict__
    attributes.update(zip(names, values, strict=True))
    state = attributes["_state"] = ModelState()
    state.adding, state.db = False, alias
    return row


def _returning(connection: BaseDatabaseWrapper, table: str, now: datetime) -> tuple[str, list[Any]]:
    """Return the RETURNING list of a claim, and its parameters.

    Every column is returned, but those whose value the claim itself set, and the
    empty JSON lists of a first attempt, come back as NULL: the caller fills them in.
    Django turns each timestamp and JSON value read into Python in Python code, a few
    microseconds apiece; this leaves two of seven timestamps to convert, and no JSON on
    a first attempt.
    """
    quote = connection.ops.quote_name
    postgresql = connection.vendor == "postgresql"
    empty_list = "'[]'::jsonb" if postgresql else "'[]'"
    null_timestamp = "NULL::timestamptz" if postgresql else "NULL"
    nulled = {
        "lease_expires_at": null_timestamp,
        "last_attempted_at": null_timestamp,
        "started_at": f"NULLIF({table}.{quote('started_at')}, %s)",
        "errors": f"NULLIF({table}.{quote('errors')}, {empty_list})",
        "worker_ids": f"NULLIF({table}.{quote('worker_ids')}, {empty_list})",
    }
    columns = []
    for name in fields_by_name():  # each column is named after its field
        column = quote(name)
        expression = nulled.get(name)
        columns.append(f"{expression} AS {column}" if expression else f"{table}.{column}")
    return ", ".join(columns), [connection.ops.adapt_datetimefield_value(now)]


def renew(scope: Scope, worker_id: str, lease: timedelta) -> int:
    """Extend the lease of every row `worker_id` is running; return how many."""
    return (
        DBTaskResult.objects.using(scope.alias)
        .filter(status=RUNNING, worker_id=worker_id)
        .update(lease_expires_at=timezone.now() + lease)
    )


def release(scope: Scope, worker_id: str, rows: Sequence[DBTaskResult]) -> int:
    """Hand back claimed rows that never started, as if they had never been claimed."""
    released = 0
    for row in rows:
        released += (
            DBTaskResult.objects.using(scope.alias)
            .filter(id=row.id, status=RUNNING, worker_id=worker_id)
            .update(
                status=READY,
                worker_id=None,
                lease_expires_at=None,
                started_at=row.started_at if row.worker_ids else None,
                last_attempted_at=row.last_attempted_at if row.worker_ids else None,
            )
        )
    return released


def last_attempt_lost(row: DBTaskResult) -> bool:
    """Tell whether the row's last attempt died with its worker (it may have killed it)."""
    return bool(row.errors) and row.errors[-1].get("exception_class_path") == WORKER_LOST


def _lost_attempts(row: DBTaskResult) -> int:
    return sum(1 for error in row.errors if error.get("exception_class_path") == WORKER_LOST)


def abandon(
    scope: Scope, row: DBTaskResult, reason: str, max_lost_attempts: int, *, expected_lease: Any
) -> TaskResultStatus | None:
    """Record a lost attempt on a RUNNING row and make it READY again, or FAILED.

    Return the new status, or None if the row changed hands in the meantime.
    """
    now = timezone.now()
    error = TaskError(exception_class_path=WORKER_LOST, traceback=reason)
    lost = _lost_attempts(row) + 1
    status = FAILED if lost >= max_lost_attempts else READY
    if status == FAILED:
        error = dataclasses.replace(
            error,
            traceback=f"{reason}\nThe task has lost {lost} attempts with their workers "
            f"(MAX_LOST_ATTEMPTS is {max_lost_attempts}), so it is not run again.",
        )
    updated = (
        DBTaskResult.objects.using(scope.alias)
        .filter(id=row.id, status=RUNNING, worker_id=row.worker_id)
        .filter(Q(lease_expires_at=expected_lease) if expected_lease else Q())
        .update(
            status=status,
            worker_id=None,
            lease_expires_at=None,
            ready_at=now,
            finished_at=now if status == FAILED else None,
            worker_ids=[*row.worker_ids, row.worker_id],
            errors=[*row.errors, dataclasses.asdict(error)],
        )
    )
    return status if updated else None


def reclaim_expired(scope: Scope, max_lost_attempts: int, limit: int = 100) -> int:
    """Take back rows whose worker stopped renewing its lease; return how many."""
    now = timezone.now()
    expired = list(
        DBTaskResult.objects.using(scope.alias)
        .filter(status=RUNNING, backend_name=scope.backend_name, lease_expires_at__lt=now)
        .order_by("lease_expires_at")[:limit]
    )
    reclaimed = 0
    for row in expired:
        reason = (
            f"Worker {row.worker_id} stopped renewing its lease, which expired at "
            f"{row.lease_expires_at.isoformat() if row.lease_expires_at else '?'}; "
            "the attempt was lost."
        )
        if abandon(scope, row, reason, max_lost_attempts, expected_lease=row.lease_expires_at):
            reclaimed += 1
    return reclaimed


def finish(scope: Scope, worker_id: str, row_id: uuid.UUID, **fields: Any) -> bool:
    """Write a finished attempt if `worker_id` still holds the row; tell whether it did."""
    return bool(
        DBTaskResult.objects.using(scope.alias)
        .filter(id=row_id, status=RUNNING, worker_id=worker_id)
        .update(worker_id=None, lease_expires_at=None, **fields)
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """The outcome of one attempt, waiting to be written with others."""

    id: uuid.UUID
    status: str
    ready_at: datetime
    started_at: datetime | None
    last_attempted_at: datetime
    finished_at: datetime | None
    return_value: str | None
    errors: list[dict[str, Any]]
    worker_ids: list[str]
    claimed_at: datetime
    """The row's `last_attempted_at` as this attempt's claim set it: the claim's token.

    A write is guarded by it as well as by the worker id. The same worker can claim a
    row again while it still runs an earlier attempt (that attempt's lease expired and
    the row was taken back); the earlier attempt's outcome must not land on the new
    claim.
    """


_FINISHED_COLUMNS = (
    "id",
    "status",
    "ready_at",
    "started_at",
    "last_attempted_at",
    "finished_at",
    "return_value",
    "errors",
    "worker_ids",
)
_POSTGRES_TYPES = {
    "id": "uuid",
    "status": "text",
    "ready_at": "timestamptz",
    "started_at": "timestamptz",
    "last_attempted_at": "timestamptz",
    "finished_at": "timestamptz",
    "return_value": "text",
    "errors": "jsonb",
    "worker_ids": "jsonb",
    "claimed_at": "timestamptz",
}
# What a finishing write sends per row: the columns it sets, and the claim's token.
_SENT = (*_FINISHED_COLUMNS, "claimed_at")


def _finish_many_postgresql(
    connection: BaseDatabaseWrapper, finished: Sequence[Finished], worker_id: str
) -> int:
    """Write the outcomes as one JSON document unpacked by `jsonb_to_recordset`.

    The statement stays short whatever the batch size, so psycopg parses it once and
    caches it; a VALUES list of 100 rows (900 placeholders) was re-parsed on every
    flush, which cost more CPU than running the 100 no-op tasks.
    """
    quote = connection.ops.quote_name
    table = quote(DBTaskResult._meta.db_table)
    document = orjson.dumps(
        [{name: getattr(item, name) for name in _SENT} for item in finished]
    ).decode()
    record = ", ".join(f"{quote(name)} {kind}" for name, kind in _POSTGRES_TYPES.items())
    assignments = ", ".join(
        f"{quote(name)} = v.{quote(name)}" for name in _FINISHED_COLUMNS if name != "id"
    )
    sql = (
        f"UPDATE {table} SET {assignments}, worker_id = NULL, lease_expires_at = NULL "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({record}) "
        f"WHERE {table}.id = v.id AND {table}.worker_id = %s AND {table}.status = %s "
        f"AND {table}.{quote('last_attempted_at')} = v.claimed_at RETURNING {table}.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document, worker_id, RUNNING])
        return len(cursor.fetchall())


def finish_many(scope: Scope, worker_id: str, finished: Sequence[Finished]) -> int:
    """Write many finished attempts in one statement; return how many rows were still ours.

    Like `finish`, each row is written only while `worker_id` holds its lease.
    """
    if not finished:
        return 0
    connection = connections[scope.alias]
    if connection.vendor == "postgresql":
        return _finish_many_postgresql(connection, finished, worker_id)
    fields = fields_by_name()
    adapt = field_adapter(fields["last_attempted_at"], connection)
    adapted_times: dict[tuple[datetime, int], Any] = {}

    def adapt_time(value: datetime | None) -> Any:
        # Every time column is adapted alike, each time once: the rows of one claim share
        # its time (their `started_at`, `last_attempted_at` and token), and those of one
        # bulk enqueue their `ready_at`. `fold` is part of the key: two times of one zone
        # that differ only in it are equal, yet an hour apart.
        if value is None:
            return None
        key = (value, value.fold)
        if key not in adapted_times:
            adapted_times[key] = adapt(value)
        return adapted_times[key]

    adapters = [
        adapt_time
        if isinstance(fields[name], DateTimeField)
        else field_adapter(fields[name], connection)
        for name in _FINISHED_COLUMNS
    ]
    adapters.append(adapt_time)  # claimed_at
    values = operator.attrgetter(*_FINISHED_COLUMNS, "claimed_at")  # one call per outcome
    rows = [
        [adapt(value) for adapt, value in zip(adapters, columns, strict=True)]
        for columns in map(values, finished)
    ]
    sql, params = _finish_many_sql(connection, rows, worker_id)
    with connection.cursor() as cursor:
        statements.execute(cursor, sql, params)
        if connection.vendor == "mysql":
            return int(cursor.rowcount)
        # sqlite3 reports no rowcount for a statement that starts with WITH.
        return len(cursor.fetchall())


def field_adapter(field: Field[Any, Any], connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """Return what `field.get_db_prep_save` does to an outcome's value, in less time.

    An outcome holds values already of their field's Python type (UUIDs, aware times
    under `USE_TZ`, text, lists), which `get_prep_value` would only check again: the
    database adapter alone runs (`prepared=True`). Two adapters are written out here,
    as each took about 10 µs per value through Django's (profiled): an aware time
    becomes its naive text in the connection's time zone, as SQLite's and MySQL's
    `adapt_datetimefield_value` make it; JSON text is written by orjson (as the
    PostgreSQL path writes it), or by the field's own adapter for what orjson refuses.
    """
    prepare = field.get_db_prep_value

    def adapt(value: Any) -> Any:
        return None if value is None else prepare(value, connection, prepared=True)

    if connection.vendor not in ("sqlite", "mysql"):  # PostgreSQL: Jsonb, aware times
        return adapt
    if isinstance(field, JSONField) and field.encoder is None:

        def adapt_json(value: Any) -> Any:
            if value is None:
                return None
            try:
                return orjson.dumps(value).decode()
            except TypeError:  # orjson.JSONEncodeError: a lone surrogate, a huge int
                return prepare(value, connection, prepared=True)

        return adapt_json
    if isinstance(field, DateTimeField) and settings.USE_TZ:
        zone = connection.timezone

        def adapt_time(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.utcoffset() is not None:  # aware
                value = value.astimezone(zone).replace(tzinfo=None)
            return str(value)

        return adapt_time
    return adapt


def _finish_many_sql(
    connection: BaseDatabaseWrapper, rows: list[list[Any]], worker_id: str
) -> tuple[str, list[Any]]:
    vendor = connection.vendor
    quote = connection.ops.quote_name
    table = quote(DBTaskResult._meta.db_table)
    params = [value for row in rows for value in row]
    guard = [worker_id, RUNNING]
    updates = [name for name in _FINISHED_COLUMNS if name != "id"]
    claimed = quote("last_attempted_at")
    if vendor == "mysql":
        first = ", ".join(f"%s AS {quote(name)}" for name in _SENT)
        rest = ", ".join(["%s"] * len(_SENT))
        values = " UNION ALL ".join([f"SELECT {first}"] + [f"SELECT {rest}"] * (len(rows) - 1))
        assignments = ", ".join(f"t.{quote(name)} = v.{quote(name)}" for name in updates)
        sql = (
            f"UPDATE {table} t JOIN ({values}) v ON t.{quote('id')} = v.{quote('id')} "
            f"SET {assignments}, t.worker_id = NULL, t.lease_expires_at = NULL "
            f"WHERE t.worker_id = %s AND t.status = %s AND t.{claimed} = v.claimed_at"
        )
        return sql, params + guard
    row = "(" + ", ".join(["%s"] * len(_SENT)) + ")"
    names = ", ".join(quote(name) for name in _SENT)
    assignments = ", ".join(f"{quote(name)} = v.{quote(name)}" for name in updates)
    sql = (
        f"WITH v ({names}) AS (VALUES {', '.join([row] * len(rows))}) "
        f"UPDATE {table} SET {assignments}, worker_id = NULL, lease_expires_at = NULL "
        f"FROM v WHERE {table}.id = v.id "
        f"AND {table}.worker_id = %s AND {table}.status = %s "
        f"AND {table}.{claimed} = v.claimed_at RETURNING {table}.id"
    )
    return sql, params + guard

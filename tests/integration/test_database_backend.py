"""What is particular to the database backend: claim order, leases, pruning, bad rows."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import signal
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import django_tasks
from django_tasks import RetryPolicy, TaskResultStatus
from django_tasks.backends.database import claims
from django_tasks.backends.database.management.commands import db_worker
from django_tasks.backends.database.management.commands.db_worker import stop_on_signals
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.worker import Worker, WorkerOptions
from tests import tasks
from tests.conftest import drain
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)
LEASE = timedelta(seconds=60)


@pytest.fixture
def backend():
    return django_tasks.task_backends["database"]


@pytest.fixture
def scope(backend):
    return claims.Scope(alias=backend.db_alias(), backend_name=backend.alias, queues=None)


def on_database(task, **options):
    return task.using(backend="database", **options)


def test_enqueue__is_one_insert(backend):
    with CaptureQueriesContext(connection) as queries:
        on_database(tasks.add).enqueue(1, 2)

    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]


def test_enqueue__stores_the_validated_json(backend):
    result = on_database(tasks.kinds).enqueue(1, "b", 2.5, d=None)

    row = DBTaskResult.objects.get(id=result.id)
    assert row.args_kwargs == '{"args":[1,"b",2.5],"kwargs":{"d":null}}'
    assert (row.task_path, row.queue_name, row.status) == ("tests.tasks.kinds", "default", "READY")
    assert row.ready_at == row.enqueued_at


def test_claim__highest_priority_first_then_fifo(backend, scope):
    low = on_database(tasks.add, priority=-10).enqueue(1, 1)
    first = on_database(tasks.add).enqueue(1, 1)
    second = on_database(tasks.add).enqueue(1, 1)
    high = on_database(tasks.add, priority=50).enqueue(1, 1)

    claimed = claims.claim(scope, "w", 10, LEASE)

    assert [str(row.id) for row in claimed] == [high.id, first.id, second.id, low.id]
    assert {row.status for row in claimed} == {TaskResultStatus.RUNNING}
    assert {row.worker_id for row in claimed} == {"w"}


def test_claim__returns_the_rows_as_stored(backend, scope):
    """The claim reads some columns back as NULL and fills them in: check each field."""
    fresh = on_database(tasks.add).enqueue(1, 1)
    retried = on_database(tasks.add, priority=5).enqueue(2, 2)
    earlier = timezone.now() - timedelta(minutes=5)
    error = {"exception_class_path": "builtins.ValueError", "traceback": "boom"}
    DBTaskResult.objects.filter(id=retried.id).update(
        started_at=earlier, errors=[error], worker_ids=["gone"]
    )

    claimed = claims.claim(scope, "w", 10, LEASE)

    assert [str(row.id) for row in claimed] == [retried.id, fresh.id]
    for row in claimed:
        stored = DBTaskResult.objects.get(id=row.id)
        fields = [field.attname for field in DBTaskResult._meta.concrete_fields]
        assert {name: getattr(row, name) for name in fields} == {
            name: getattr(stored, name) for name in fields
        }
    assert (claimed[0].started_at, claimed[0].errors, claimed[0].worker_ids) == (
        earlier,
        [error],
        ["gone"],
    )
    assert claimed[1].started_at == claimed[1].last_attempted_at
    assert (claimed[1].errors, claimed[1].worker_ids) == ([], [])


def test_claim__takes_each_row_once(backend, scope):
    for _ in range(5):
        on_database(tasks.add).enqueue(1, 1)

    first = claims.claim(scope, "a", 3, LEASE)
    second = claims.claim(scope, "b", 3, LEASE)

    assert len(first) == 3
    assert len(second) == 2
    assert not {row.id for row in first} & {row.id for row in second}
    assert claims.claim(scope, "c", 3, LEASE) == []


def test_claim__leaves_future_tasks_and_other_queues(backend):
    on_database(tasks.add, run_after=timedelta(hours=1)).enqueue(1, 1)
    on_database(tasks.add, queue_name="reports").enqueue(1, 1)
    due = on_database(tasks.add).enqueue(1, 1)
    only_default = claims.Scope(
        alias=backend.db_alias(), backend_name="database", queues=("default",)
    )

    assert [str(row.id) for row in claims.claim(only_default, "w", 10, LEASE)] == [due.id]


def test_claim__costs_few_statements_per_batch(backend, scope):
    for _ in range(20):
        on_database(tasks.add).enqueue(1, 1)

    with CaptureQueriesContext(connection) as queries:
        assert len(claims.claim(scope, "w", 20, LEASE)) == 20

    assert len(queries.captured_queries) <= 5, [q["sql"] for q in queries.captured_queries]


def test_reclaim__expired_lease_is_a_lost_attempt(backend, scope):
    result = on_database(tasks.add).enqueue(1, 1)
    claims.claim(scope, "gone", 1, timedelta(seconds=-1))

    assert claims.reclaim_expired(scope, max_lost_attempts=3) == 1

    row = DBTaskResult.objects.get(id=result.id)
    assert (row.status, row.worker_id, row.worker_ids) == ("READY", None, ["gone"])
    assert row.errors[0]["exception_class_path"] == "django_tasks.exceptions.WorkerLost"
    drain(backend, worker_id="next")
    finished = result.refresh()
    assert (finished.return_value, finished.attempts, finished.worker_ids) == (
        2,
        2,
        ["gone", "next"],
    )


def test_reclaim__stops_a_task_that_keeps_losing_its_worker(backend, scope):
    result = on_database(tasks.add).enqueue(1, 1)
    for attempt in range(3):
        claims.claim(scope, f"w{attempt}", 1, timedelta(seconds=-1))
        claims.reclaim_expired(scope, max_lost_attempts=3)

    finished = result.refresh()
    assert finished.status == TaskResultStatus.FAILED
    assert finished.worker_ids == ["w0", "w1", "w2"]
    assert len(finished.errors) == 3
    assert "lost 3 attempts" in finished.errors[-1].traceback
    assert claims.claim(scope, "w3", 1, LEASE) == []


def test_reclaim__leaves_live_leases_alone(backend, scope):
    on_database(tasks.add).enqueue(1, 1)
    claims.claim(scope, "alive", 1, LEASE)

    assert claims.reclaim_expired(scope, max_lost_attempts=3) == 0
    assert claims.renew(scope, "alive", LEASE) == 1


def test_finish__only_the_lease_holder_writes(backend, scope):
    on_database(tasks.add).enqueue(1, 1)
    [row] = claims.claim(scope, "slow", 1, timedelta(seconds=-1))
    claims.reclaim_expired(scope, max_lost_attempts=3)

    assert claims.finish(scope, "slow", row.id, status=TaskResultStatus.SUCCESSFUL) is False
    assert DBTaskResult.objects.get(id=row.id).status == TaskResultStatus.READY


def test_release__hands_back_unstarted_rows(backend, scope):
    on_database(tasks.add).enqueue(1, 1)
    rows = claims.claim(scope, "w", 1, LEASE)

    assert claims.release(scope, "w", rows) == 1

    row = DBTaskResult.objects.get(id=rows[0].id)
    assert (row.status, row.worker_id, row.started_at, row.last_attempted_at) == (
        "READY",
        None,
        None,
        None,
    )


def test_worker__max_tasks_stops_after_that_many(backend):
    for n in range(5):
        on_database(tasks.add).enqueue(n, 0)

    worker = drain(backend, max_tasks=2, batch=False)

    assert worker.tasks_finished == 2
    assert DBTaskResult.objects.filter(status="SUCCESSFUL").count() == 2


def test_worker__concurrency_runs_everything(backend):
    results = [on_database(tasks.add).enqueue(n, n) for n in range(30)]

    drain(backend, concurrency=4, prefetch=4)

    assert [r.refresh().return_value for r in results] == [2 * n for n in range(30)]


def test_worker__stops_starting_no_more_threads_than_its_tasks_used(backend, monkeypatch):
    """At stop, each pool thread closes its connections; threads never started are not
    started for that (at --concurrency 10000 that took half a minute)."""
    results = [on_database(tasks.add).enqueue(n, n) for n in range(3)]
    before = threading.active_count()
    closed_in: list[int] = []
    close_all = connections.close_all

    def recording_close_all() -> None:
        closed_in.append(threading.get_ident())
        close_all()

    monkeypatch.setattr(connections, "close_all", recording_close_all)
    worker = drain(backend, concurrency=10_000)

    assert [r.refresh().status for r in results] == [TaskResultStatus.SUCCESSFUL] * 3
    # Each thread the pool started closed its connections, and it started few: the tasks
    # ran on at most 3, and a round of closing jobs (one per thread started) may start as
    # many again while threads that just finished a task are not idle yet; a second
    # round, rarer, as many again (see `_close_pool_connections`). Nowhere near 10,000.
    assert set(worker._pool_started) <= set(closed_in)
    assert 1 <= len(worker._pool_started) <= 12
    assert threading.active_count() <= before  # the pool's threads are gone


def test_worker__runs_only_its_queues(backend):
    report = on_database(tasks.in_queue).enqueue(1)
    default = on_database(tasks.add).enqueue(1, 1)

    drain(backend, queues=("reports",))

    assert report.refresh().status == TaskResultStatus.SUCCESSFUL
    assert default.refresh().status == TaskResultStatus.READY


def test_stop_signal__handled_while_the_main_thread_holds_the_workers_lock(backend):
    """A signal handler runs between two bytecodes of the main thread, which may then be
    inside `Event.wait` holding the Event's lock. A handler setting that Event itself
    would wait for the lock forever: the handler must hand its work to another thread.
    """
    worker = Worker(backend, WorkerOptions(startup_delay=False))
    held = worker._wake._cond  # the lock Event.wait holds around its own bookkeeping
    with stop_on_signals(worker):
        held.acquire()
        # If the handler blocked on the lock, this releases it after 3 s, so the test
        # fails on the time taken instead of hanging.
        rescue = threading.Timer(3.0, held.release)
        rescue.start()
        started = time.monotonic()
        signal.raise_signal(signal.SIGTERM)  # the handler runs now, in this thread
        handled_in = time.monotonic() - started
        rescue.cancel()
        if handled_in < 3.0:
            held.release()
        stopped = worker._stopping.wait(5)

    assert handled_in < 1.0
    assert stopped
    assert not worker.forced
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back on exit


def test_stop_signal__a_log_handler_stuck_in_the_relay_does_not_keep_the_worker(
    backend, monkeypatch
):
    """The relay thread logs the stop; a handler stuck writing that line (stdout piped
    to a reader that stopped reading) must not keep the command from returning."""
    monkeypatch.setattr(db_worker, "RELAY_JOIN_SECONDS", 0.3)
    stuck, release = threading.Event(), threading.Event()

    class Stuck(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("worker_stopping"):
                stuck.set()
                release.wait(10)

    handler = Stuck()
    worker_logger = db_worker.logger
    worker_logger.addHandler(handler)
    worker = Worker(backend, WorkerOptions(startup_delay=False))
    try:
        with stop_on_signals(worker):
            signal.raise_signal(signal.SIGTERM)
            assert stuck.wait(5)
            started = time.monotonic()
        left_in = time.monotonic() - started
    finally:
        release.set()
        worker_logger.removeHandler(handler)

    assert 0.3 <= left_in < 2.0
    assert worker.stopping  # counted by the handler itself, relay or not
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_stop_signals__between_two_tasks_start_no_other(backend):
    """Two signals while the main thread is between tasks: the next claimed one must not
    start, whether or not the thread that logs and wakes the worker has run yet."""
    first = on_database(tasks.add, priority=5).enqueue(1, 1)
    waiting = on_database(tasks.slow).enqueue("waiting", 3)
    worker = Worker(backend, WorkerOptions(queues=None, startup_delay=False, prefetch=5))
    record = worker._add_finished

    def record_then_signal_twice(finished):
        record(finished)
        signal.raise_signal(signal.SIGTERM)  # each handler runs at once, in this thread
        signal.raise_signal(signal.SIGTERM)

    worker._add_finished = record_then_signal_twice
    with stop_on_signals(worker):
        worker.run()

    assert worker.forced
    assert first.refresh().status == TaskResultStatus.SUCCESSFUL
    assert waiting.refresh().status == TaskResultStatus.READY  # handed back, never started
    assert not Run.objects.filter(key="waiting:start").exists()


def test_stop_signals__in_a_receiver_after_the_task_returned_keep_its_outcome(backend):
    """Two signals while `task_finished` receivers run: the task has returned, so its
    outcome is recorded, not abandoned as a lost attempt to run again."""
    result = on_database(tasks.add).enqueue(2, 3)
    worker = Worker(backend, WorkerOptions(queues=None, startup_delay=False))

    def signal_twice(sender: type, task_result: Any, **kwargs: Any) -> None:
        signal.raise_signal(signal.SIGTERM)  # each handler runs at once, in this thread
        signal.raise_signal(signal.SIGTERM)

    django_tasks.task_finished.connect(signal_twice)
    try:
        with stop_on_signals(worker):
            worker.run()
    finally:
        django_tasks.task_finished.disconnect(signal_twice)

    assert worker.forced
    finished = result.refresh()
    assert finished.status == TaskResultStatus.SUCCESSFUL
    assert finished.return_value == 5
    assert finished.errors == []


def test_worker__stores_the_times_its_signals_sent(backend):
    """The row keeps the times `task_started` and `task_finished` receivers saw."""
    done = on_database(tasks.add).enqueue(2, 3)
    failed = on_database(tasks.fails).enqueue("boom")
    seen: dict[str, dict[str, Any]] = {}

    def keep(sender: type, task_result: Any, **kwargs: Any) -> None:
        seen.setdefault(task_result.id, {}).update(
            (name, getattr(task_result, name))
            for name in ("started_at", "last_attempted_at", "finished_at")
        )

    django_tasks.task_started.connect(keep)
    django_tasks.task_finished.connect(keep)
    try:
        Worker(backend, WorkerOptions(queues=None, startup_delay=False, batch=True)).run()
    finally:
        django_tasks.task_started.disconnect(keep)
        django_tasks.task_finished.disconnect(keep)

    for result in (done, failed):
        stored = result.refresh()
        assert stored.is_finished
        assert stored.finished_at is not None
        assert {
            "started_at": stored.started_at,
            "last_attempted_at": stored.last_attempted_at,
            "finished_at": stored.finished_at,
        } == seen[result.id]


def test_get_result__only_this_backends_results(settings, backend):
    settings.TASKS = {
        **settings.TASKS,
        "other": {"BACKEND": "django_tasks.backends.database.DatabaseBackend"},
    }
    other = on_database(tasks.add).using(backend="other").enqueue(1, 2)

    assert django_tasks.task_backends["other"].get_result(other.id).backend == "other"
    with pytest.raises(django_tasks.TaskResultDoesNotExist) as error:
        backend.get_result(other.id)
    assert str(error.value) == f"No task result {other.id} in backend 'database'."


def test_get_result__unknown_and_malformed_ids(backend):
    for result_id in ["2f1b7a4e-0000-4000-8000-000000000000", "not-a-uuid"]:
        with pytest.raises(django_tasks.TaskResultDoesNotExist):
            backend.get_result(result_id)


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_db_task_results", "--backend", "database", *args, stdout=out)
    return out.getvalue().strip()


@pytest.mark.parametrize("days", ["-1", "nan", "inf", "1e9"])
def test_prune__an_age_that_is_no_number_of_days_is_refused(backend, days):
    expected = f"--min-age-days must be a number of days from 0 to 36,525, not {float(days)}."

    with pytest.raises(CommandError) as error:
        prune("--min-age-days", days)

    assert str(error.value) == expected


INTERVAL = "must be a number of seconds above 0 and at most 86400"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        *(
            pytest.param(
                ("--interval", value),
                f"argument --interval: {INTERVAL}, not {value}",
                id=f"interval-{value}",
            )
            for value in ("0", "-1", "nan", "inf", "1e10")
        ),
        pytest.param(
            ("--worker-id", "w" * 256),
            "argument --worker-id: must be 1 to 255 characters long (got 256)",
            id="worker-id-too-long",
        ),
        pytest.param(("--concurrency", "0"), "--concurrency must be at least 1.", id="no-threads"),
        pytest.param(("--prefetch", "-1"), "--prefetch cannot be negative.", id="prefetch"),
        pytest.param(("--max-tasks", "0"), "--max-tasks must be at least 1.", id="max-tasks"),
    ],
)
def test_db_worker__an_option_out_of_range_is_refused_before_it_starts(options, message):
    with pytest.raises(CommandError) as error:
        call_command("db_worker", "--backend", "database", "--batch", *options)

    assert str(error.value).removeprefix("Error: ") == message


def test_prune__deletes_only_old_finished_results(backend):
    ok = on_database(tasks.add).enqueue(1, 1)
    failed = on_database(tasks.fails).enqueue("x")
    drain(backend)
    waiting = on_database(tasks.add).enqueue(1, 1)
    DBTaskResult.objects.filter(id=failed.id).update(
        finished_at=timezone.now() - timedelta(days=10)
    )

    assert prune("--min-age-days", "5", "--dry-run") == "Would delete 1 task result(s)."
    assert prune("--min-age-days", "5") == "Deleted 1 task result(s)."
    assert prune("--status", "FAILED") == "Deleted 0 task result(s)."
    assert prune("--queue-name", "reports") == "Deleted 0 task result(s)."
    assert prune() == "Deleted 1 task result(s)."
    assert [str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)] == [waiting.id]
    del ok


def test_check__needs_the_app_installed(backend, settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if "database" not in app]

    assert [message.id for message in backend.check()] == ["django_tasks.E003"]


def test_enqueue_on_commit__inserts_after_commit(backend):
    from django.db import transaction

    task = dataclasses.replace(on_database(tasks.add), enqueue_on_commit=True)
    with transaction.atomic():
        result = task.enqueue(1, 2)
        assert not DBTaskResult.objects.filter(id=result.id).exists()

    assert DBTaskResult.objects.get(id=result.id).status == TaskResultStatus.READY


def test_enqueue_many__inserts_in_one_statement_per_500_rows_or_fewer(backend):
    task = on_database(tasks.add)

    with CaptureQueriesContext(connection) as queries:
        results = task.enqueue_many(task.arguments(n, n) for n in range(1200))

    # PostgreSQL: one COPY; SQLite: one INSERT per chunk of 1000 calls, each binding its
    # id and arguments; MariaDB: one statement per 500 rows.
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if re.match(r"(\d+ times: )?(INSERT|COPY)", q["sql"])
    ]
    writes = [sql.split(" (", 1)[0] for sql in statements]
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
    expected = {
        "postgresql": [f"COPY {table}"],
        "sqlite": [f"INSERT INTO {table}"] * 2,
    }
    assert writes == expected.get(connection.vendor, [f"INSERT INTO {table}"] * 3)
    if connection.vendor == "postgresql":
        assert statements[0].endswith("FROM STDIN -- 1200 rows")
    assert DBTaskResult.objects.count() == 1200
    assert {str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)} == {
        r.id for r in results
    }
    drain(backend, prefetch=100)
    assert sorted(r.refresh().return_value for r in results) == sorted(2 * n for n in range(1200))


def test_enqueue_many__a_validator_may_query_the_database(backend):
    # Nothing of the project runs while a statement holds the connection (an open COPY
    # held it, and a validator's query waited for it for good).
    def hung(signum: int, frame: Any) -> None:
        raise TimeoutError("enqueue_many waited 30 s: a query waited for the connection")

    task = on_database(tasks.checks_the_database)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        results = task.enqueue_many(task.arguments(n) for n in range(1500))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

    assert DBTaskResult.objects.count() == len(results) == 1500


def test_enqueue_many__bad_calls_store_none_and_name_each(backend):
    from django.db import transaction

    task = on_database(tasks.fails)
    calls = [task.arguments(str(n)) for n in range(2500)]
    calls[1500] = task.arguments(1)  # type: ignore[arg-type]
    calls[2400] = task.arguments("\x00")  # JSON would store it, but not PostgreSQL text

    with transaction.atomic():
        Run.objects.create(key="before", pid=0)
        with pytest.raises(django_tasks.InvalidTaskError) as caught:
            task.enqueue_many(calls)
        # The connection is usable, and the outer transaction goes on.
        after = task.enqueue("after")

    assert str(caught.value).startswith("2 of the calls to task 'tests.tasks.fails' are invalid")
    assert [error["loc"][:2] for error in caught.value.errors] == [("call", 1500), ("call", 2400)]
    assert list(DBTaskResult.objects.values_list("id", flat=True)) == [uuid.UUID(after.id)]
    assert Run.objects.filter(key="before").exists()


def test_enqueue_many__no_calls_store_nothing(backend):
    with CaptureQueriesContext(connection) as queries:
        assert on_database(tasks.add).enqueue_many([]) == []

    assert queries.captured_queries == []
    assert not DBTaskResult.objects.exists()


# Quotes and Django's placeholder characters: SQLite writes a bulk enqueue's shared
# columns into the statement as literals, which must keep them as they are; backslashes
# and line breaks, which PostgreSQL's COPY text escapes.
AWKWARD = "it's 50%s %% o'clock \\N \\ \t\r\n"
AWKWARD_TEXT = 'a "quoted" \\ back\\slash, \\N, tab\t, breaks\r\n, and é ✓'


def test_enqueue_many__stores_arguments_as_a_single_enqueue_does(backend):
    task = on_database(tasks.fails)

    [single] = stored_rows([task.enqueue(AWKWARD_TEXT)])
    many = stored_rows(task.enqueue_many([task.arguments(AWKWARD_TEXT)] * 3))

    assert [row["args_kwargs"] for row in many] == [single["args_kwargs"]] * 3
    assert json.loads(single["args_kwargs"]) == {"args": [AWKWARD_TEXT], "kwargs": {}}


def stored_rows(results: list[Any]) -> list[dict[str, Any]]:
    rows = DBTaskResult.objects.in_bulk([r.id for r in results])
    names = [field.name for field in DBTaskResult._meta.concrete_fields]
    return [{name: getattr(rows[uuid.UUID(r.id)], name) for name in names} for r in results]


def test_enqueue_many__stores_the_columns_a_single_enqueue_stores(backend, settings):
    database = settings.TASKS["database"]
    settings.TASKS = {**settings.TASKS, AWKWARD: {**database, "QUEUES": [AWKWARD]}}
    policy = RetryPolicy(max_attempts=2, delay=timedelta(seconds=3))
    task = tasks.add.using(
        backend=AWKWARD, queue_name=AWKWARD, priority=7, run_after=timedelta(hours=1), retry=policy
    )

    [single] = stored_rows([task.enqueue(1, 2)])
    many = stored_rows(task.enqueue_many([task.arguments(3, 4), task.arguments(5, b=6)]))

    varying = {"id", "args_kwargs", "run_after", "ready_at", "enqueued_at"}
    shared = {name: value for name, value in single.items() if name not in varying}
    assert shared["queue_name"] == shared["backend_name"] == AWKWARD
    assert (shared["status"], shared["priority"]) == ("READY", 7)
    assert shared["retry"]["max_attempts"] == 2
    for row in many:
        assert {name: value for name, value in row.items() if name not in varying} == shared
        assert row["ready_at"] == row["run_after"]
        delay = row["run_after"] - row["enqueued_at"]
        assert abs(delay - timedelta(hours=1)) < timedelta(seconds=5)
    assert many[0]["enqueued_at"] == many[1]["enqueued_at"]
    assert [json.loads(row["args_kwargs"]) for row in many] == [
        {"args": [3, 4], "kwargs": {}},
        {"args": [5], "kwargs": {"b": 6}},
    ]


def bound_values_of_each_insert(run: Any) -> list[int]:
    """Run `run()` and return how many values each INSERT it executed bound.

    Other statements (MySQL's session set-up on a new connection) are left out.
    """
    counts: list[int] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("INSERT"):
            counts.append(len(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        run()
    return counts


def test_enqueue__binds_only_the_id_times_and_arguments(backend):
    task = on_database(tasks.add, priority=3)

    counts = bound_values_of_each_insert(lambda: task.enqueue(1, 2))

    assert counts == [4]  # id, ready_at, enqueued_at, args_kwargs: the rest are literals


# Quotes and percent signs have a literal form everywhere; a backslash only on SQLite
# (elsewhere it may be an escape character), so the others bind every column for it.
@pytest.mark.parametrize("name", ["it's 50%s %% o'clock", AWKWARD], ids=["quotes", "backslash"])
def test_enqueue__stores_awkward_shared_columns_as_given(backend, settings, name):
    database = settings.TASKS["database"]
    settings.TASKS = {**settings.TASKS, name: {**database, "QUEUES": [name]}}
    policy = RetryPolicy(max_attempts=3, delay=timedelta(seconds=2))
    task = tasks.add.using(backend=name, queue_name=name, priority=-4, retry=policy)

    [row] = stored_rows([task.enqueue(1, 2)])
    [delayed] = stored_rows([task.using(run_after=timedelta(hours=1)).enqueue(3, 4)])

    assert (row["backend_name"], row["queue_name"], row["priority"]) == (name, name, -4)
    assert (row["status"], row["errors"], row["worker_ids"]) == ("READY", [], [])
    assert row["retry"]["max_attempts"] == 3
    assert row["run_after"] is None
    assert row["ready_at"] == row["enqueued_at"]
    assert json.loads(row["args_kwargs"]) == {"args": [1, 2], "kwargs": {}}
    assert delayed["ready_at"] == delayed["run_after"]
    assert abs(delayed["run_after"] - delayed["enqueued_at"] - timedelta(hours=1)) < timedelta(
        seconds=5
    )


def test_enqueue__stores_a_policy_whose_attempts_exceed_64_bits(backend):
    """orjson refuses such an integer: the policy is written by Django's JSON adapter."""
    policy = RetryPolicy(max_attempts=2**64, delay=timedelta(seconds=1))
    task = on_database(tasks.add).using(retry=policy)

    results = [task.enqueue(1, 2), *task.enqueue_many([task.arguments(3, 4)] * 2)]

    for row in stored_rows(results):
        assert row["retry"]["max_attempts"] == 2**64
        assert RetryPolicy.from_json(row["retry"]) == policy


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL session setting")
def test_enqueue__stores_a_backslash_where_it_is_an_escape_character(backend, settings):
    name = "back\\slash\\n"
    database = settings.TASKS["database"]
    settings.TASKS = {**settings.TASKS, "database": {**database, "QUEUES": [name]}}
    with connection.cursor() as cursor:
        cursor.execute("SET standard_conforming_strings = off")
    try:
        [row] = stored_rows([on_database(tasks.add, queue_name=name).enqueue(1, 2)])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET standard_conforming_strings")

    assert row["queue_name"] == name


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="only SQLite can hold a NUL in text",
)
def test_enqueue_many__binds_a_shared_value_no_literal_can_hold(backend, settings):
    queue = "nul\x00queue"
    database = settings.TASKS["database"]
    settings.TASKS = {**settings.TASKS, "database": {**database, "QUEUES": [queue]}}
    task = on_database(tasks.add, queue_name=queue)

    rows = stored_rows(task.enqueue_many([task.arguments(1, 2), task.arguments(3, 4)]))
    [single] = stored_rows([task.enqueue(5, 6)])

    assert [row["queue_name"] for row in rows] == [queue, queue]
    assert single["queue_name"] == queue


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="only SQLite's bulk INSERT is sized by bound values"
)
def test_enqueue_many__keeps_each_insert_within_sqlites_bound_value_limit(backend):
    task = on_database(tasks.add)
    connection.ensure_connection()
    raw = connection.connection
    default = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 5)  # two rows of two values
    try:
        with CaptureQueriesContext(connection) as queries:
            results = task.enqueue_many([task.arguments(n, n) for n in range(5)])
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, default)

    inserts_run = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts_run) == 3
    rows = stored_rows(results)
    assert [json.loads(row["args_kwargs"])["args"] for row in rows] == [[n, n] for n in range(5)]


def test_retry__the_worker_waits_the_backoff_between_attempts(backend):
    from tests.models import Run

    result = on_database(tasks.backs_off).enqueue("b")

    drain(backend, batch=False, max_tasks=3, interval=0.05)

    times = [Run.objects.get(key=f"b:{attempt}").created_at for attempt in (1, 2, 3)]
    assert (times[1] - times[0]).total_seconds() >= 0.3
    assert (times[2] - times[1]).total_seconds() >= 0.6
    finished = result.refresh()
    assert (finished.status, finished.return_value, finished.attempts) == ("SUCCESSFUL", 3, 3)
    assert [e.exception_class for e in finished.errors] == [ConnectionError, ConnectionError]


def test_retry__a_waiting_retry_is_ready_with_its_errors(backend, scope):
    result = on_database(tasks.backs_off).enqueue("w")

    drain(backend, batch=False, max_tasks=1)

    row = DBTaskResult.objects.get(id=result.id)
    assert (row.status, row.worker_id, len(row.errors), row.finished_at) == ("READY", None, 1, None)
    assert row.ready_at > row.last_attempted_at
    assert claims.claim(scope, "early", 1, LEASE) == []


def test_retry__using_policy_is_stored_with_the_row(backend):
    once = on_database(tasks.flaky).using(retry=RetryPolicy(max_attempts=2, delay=timedelta(0)))

    result = once.enqueue(5)

    assert DBTaskResult.objects.get(id=result.id).retry["max_attempts"] == 2
    assert DBTaskResult.objects.get(id=on_database(tasks.flaky).enqueue(5).id).retry is None


def test_retry__using_policy_is_stored_with_each_row_of_a_bulk_enqueue(backend):
    once = on_database(tasks.flaky).using(retry=RetryPolicy(max_attempts=2, delay=timedelta(0)))

    results = once.enqueue_many([once.arguments(5), once.arguments(6)])
    plain = on_database(tasks.flaky).enqueue_many([tasks.flaky.arguments(5)] * 2)

    rows = DBTaskResult.objects.in_bulk([r.id for r in [*results, *plain]])
    assert [rows[uuid.UUID(r.id)].retry["max_attempts"] for r in results] == [2, 2]
    assert [rows[uuid.UUID(r.id)].retry for r in plain] == [None, None]
    assert all(row.errors == [] and row.worker_ids == [] for row in rows.values())


def test_migration_0004__lease_worker_and_finished_indexes_are_partial_where_supported():
    table = DBTaskResult._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table]
            )
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = %s", [table])
        else:
            cursor.execute(
                "SELECT index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) "
                "FROM information_schema.statistics WHERE table_schema = DATABASE() "
                "AND table_name = %s GROUP BY index_name",
                [table],
            )
        found = dict(cursor.fetchall())
    partial = {
        name: "IS NOT NULL" in (found[name] or "")
        for name in (
            "django_tasks_lease_idx",
            "django_tasks_worker_idx",
            "django_tasks_finished_idx",
        )
    }
    if connection.features.supports_partial_indexes:
        assert partial == dict.fromkeys(partial, True)
        assert "IS NOT NULL" not in found["django_tasks_claim_idx"]
    else:
        # MySQL and MariaDB keep the plain indexes of the model's state.
        assert found["django_tasks_lease_idx"] == "status,lease_expires_at"


@pytest.mark.parametrize("use_tz", [True, False])
def test_finish_many__adapts_outcomes_as_django_would(settings, use_tz):
    """The outcome writer's own adapters give what each field's `get_db_prep_save` gives.

    JSON may be spelled differently (orjson against the standard library), so it is
    compared as the JSON it holds.
    """
    settings.USE_TZ = use_tz
    paris = ZoneInfo("Europe/Paris")
    times = (
        [
            datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
            datetime(2026, 11, 24, 10, 0, 0, 5, tzinfo=UTC),
            datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=paris),
            datetime(1890, 1, 1, 12, 0, tzinfo=paris),  # local mean time, +00:09:21
            timezone.now(),
        ]
        if use_tz
        else [datetime(2026, 11, 24, 10, 0), datetime(2026, 11, 24, 10, 0, 0, 5)]
    )
    texts = [None, [], ["w-1", "w-2"], [{"message": "é \udc80", "n": 2**70}], {"a": [1.5]}]
    fields = DBTaskResult._meta
    for name, values in [("finished_at", [None, *times]), ("errors", texts)]:
        field = fields.get_field(name)
        adapt = claims.field_adapter(field, connection)
        for value in values:
            expected, got = field.get_db_prep_save(value, connection), adapt(value)
            if name == "errors" and value is not None and connection.vendor == "postgresql":
                assert got.obj == expected.obj, value  # psycopg's Jsonb wrappers
            elif name == "errors" and value is not None:
                assert json.loads(got) == json.loads(expected), value
            else:
                assert got == expected, value


def test_claim__rows_hold_what_the_orm_reads_back(backend, scope):
    """A claim builds its models from the returned columns itself: every field of each
    is what the ORM reads from the same row once the claim committed."""
    policy = RetryPolicy(max_attempts=3, delay=timedelta(seconds=3))
    fresh = on_database(tasks.add).enqueue(1, 2)
    again = on_database(tasks.add, priority=5).using(retry=policy).enqueue(3, 4)
    earlier = timezone.now() - timedelta(hours=1)
    DBTaskResult.objects.filter(id=again.id).update(  # an attempt that failed before
        started_at=earlier,
        errors=[{"exception_class_path": "builtins.ValueError", "traceback": "é"}],
        worker_ids=["w-0"],
    )

    claimed = claims.claim(scope, "w-1", 10, LEASE)

    fields = DBTaskResult._meta.concrete_fields
    assert [str(row.id) for row in claimed] == [again.id, fresh.id]
    for row in claimed:
        stored = DBTaskResult.objects.get(id=row.id)
        assert {f.attname: getattr(row, f.attname) for f in fields} == {
            f.attname: getattr(stored, f.attname) for f in fields
        }
        assert not row._state.adding
        assert row._state.db == stored._state.db


def test_enqueue__stores_times_as_django_would(settings, backend):
    """The enqueue time of a prepared call is stored as the field would store it: an
    aware one as that moment, a naive one (`prepare()` takes any) read in TIME_ZONE,
    with Django's warning."""
    settings.TIME_ZONE = "Europe/Paris"
    task = on_database(tasks.add)
    aware = datetime(2026, 1, 1, 12, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    naive = datetime(2026, 1, 1, 12, 0)
    stored = {}
    for when in (aware, naive):
        result, data = backend.prepare(task, [1, 2], {}, enqueued_at=when)
        if when is naive:
            with pytest.warns(RuntimeWarning, match="naive datetime"):
                backend.enqueue_prepared(result, data)
        else:
            backend.enqueue_prepared(result, data)
        stored[when] = DBTaskResult.objects.get(id=result.id)

    assert stored[aware].enqueued_at == aware
    assert stored[naive].enqueued_at == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert stored[naive].ready_at == stored[naive].enqueued_at


def test_enqueue_many__each_result_has_its_own_lists():
    task = on_database(tasks.add)
    first, second = task.enqueue_many([task.arguments(1, 2), task.arguments(3, 4)])

    assert first.errors == second.errors == []
    assert first.errors is not second.errors
    assert first.worker_ids is not second.worker_ids


def test_result_from_row__applies_other_changes(backend):
    result = on_database(tasks.add).enqueue(1, 2)
    row = DBTaskResult.objects.get(id=result.id)
    when = datetime(2026, 1, 1, tzinfo=UTC)

    changed = backend.result_from_row(row, tasks.add, started_at=when, worker_ids=["w-9"])

    assert (changed.started_at, changed.worker_ids, changed.args) == (when, ["w-9"], [1, 2])
    with pytest.raises(TypeError):
        backend.result_from_row(row, tasks.add, colour="red")


def test_finish_many__writes_each_time_of_a_batch_as_given(backend, scope):
    """Times are adapted once per value in a batch: equal times share it, and two times of
    one zone that compare equal but differ in `fold` (an hour apart) each keep their own."""
    task = on_database(tasks.add)
    task.enqueue_many([task.arguments(1, 2), task.arguments(3, 4), task.arguments(5, 6)])
    rows = claims.claim(scope, "w-1", 10, LEASE)
    paris = ZoneInfo("Europe/Paris")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=paris)  # CEST, 00:30 UTC
    second = first.replace(fold=1)  # CET, 01:30 UTC
    assert first == second
    finished_at = [first, second, first]
    outcomes = [
        claims.Finished(
            id=row.id,
            status="SUCCESSFUL",
            ready_at=row.ready_at,
            started_at=row.started_at,
            last_attempted_at=row.last_attempted_at,
            finished_at=at,
            return_value="3",
            errors=[],
            worker_ids=["w-1"],
            claimed_at=row.last_attempted_at,
        )
        for row, at in zip(rows, finished_at, strict=True)
    ]

    assert claims.finish_many(scope, "w-1", outcomes) == 3

    stored = {row.id: row for row in DBTaskResult.objects.filter(id__in=[r.id for r in rows])}
    for row, at in zip(rows, finished_at, strict=True):
        written = stored[row.id]
        assert written.finished_at.astimezone(UTC) == at.astimezone(UTC)
        assert (written.ready_at, written.started_at) == (row.ready_at, row.started_at)
        assert written.status == "SUCCESSFUL"
    assert len({row.ready_at for row in rows}) == 1  # one bulk enqueue: one ready time


@pytest.mark.parametrize("listening", [False, True], ids=["no receiver", "post_init receiver"])
def test_claim__builds_models_as_from_db_does(backend, scope, listening):
    """Claimed rows skip `Model.__init__` only while no `pre_init`/`post_init` receiver
    listens for the model; a receiver sees every claimed row, as with the ORM."""
    from django.db.models.signals import post_init

    task = on_database(tasks.add)
    task.enqueue_many([task.arguments(1, 2), task.arguments(3, 4)])
    seen: list[Any] = []

    def receiver(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    if listening:
        post_init.connect(receiver, sender=DBTaskResult)
    try:
        claimed = claims.claim(scope, "w-1", 10, LEASE)
    finally:
        post_init.disconnect(receiver, sender=DBTaskResult)

    assert seen == (claimed if listening else [])
    for row in claimed:
        assert type(row) is DBTaskResult
        assert (row._state.adding, row._state.db) == (False, scope.alias)
        assert row.pk == row.id
        row.save(update_fields=["priority"])  # a model the ORM can write, as from_db's
    assert DBTaskResult.objects.filter(worker_id="w-1").count() == 2


def test_claim__converters_leave_null_as_it_is():
    """`claims._instances` skips the converters of NULL values: each returns them as is."""
    table = DBTaskResult._meta.db_table
    for field in DBTaskResult._meta.concrete_fields:
        column = field.get_col(table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        for convert in found:
            assert convert(None, column, connection) is None, field.name


@pytest.mark.parametrize("writing", [True, False])
def test_worker__outcomes_being_written_are_not_taken_for_unknown_claims(backend, scope, writing):
    """A claim first takes back rows held in the worker's name that it does not know of.
    Outcomes a flusher thread is writing (`_in_flight`) are known: their rows stay held."""
    result = on_database(tasks.add).enqueue(1, 2)
    worker = Worker(backend, WorkerOptions(worker_id="w-1", queues=None, prefetch=100))
    (row,) = claims.claim(scope, "w-1", 10, LEASE)
    if writing:
        worker._in_flight = [worker._execute(row)]

    worker._abandon_unknown_claims()

    stored = DBTaskResult.objects.get(id=result.id)
    assert (stored.status, stored.worker_id) == (("RUNNING", "w-1") if writing else ("READY", None))


def test_worker__writes_outcomes_behind_on_postgresql_only(backend):
    options = WorkerOptions(queues=None, prefetch=100)

    assert Worker(backend, options)._writes_behind is (connection.vendor == "postgresql")
    assert not Worker(backend, dataclasses.replace(options, prefetch=0))._writes_behind
    assert not Worker(backend, dataclasses.replace(options, concurrency=2))._writes_behind


@pytest.mark.parametrize("prefetch", [0, 1, 5])
def test_drain__runs_retries_due_at_once_before_a_batch_worker_exits(backend, prefetch):
    """A failed attempt retried without delay is due as soon as its outcome is written: a
    `--batch` worker runs it before exiting, however its outcomes are written."""
    for _ in range(2):  # the race this guards against did not lose every time
        results = [on_database(tasks.flaky).enqueue(3) for _ in range(3)]

        drain(backend, prefetch=prefetch)

        rows = DBTaskResult.objects.filter(id__in=[r.id for r in results])
        assert [(row.status, len(row.worker_ids)) for row in rows] == [("SUCCESSFUL", 3)] * 3

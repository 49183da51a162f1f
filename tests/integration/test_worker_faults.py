"""Faults inside the worker's own process: refused writes, failing renewals, receivers.

Databases refuse statements here for real: a trigger on the task table raises for the
updates a test picks (SQLite `RAISE(ABORT)`, PostgreSQL `RAISE EXCEPTION`), which
drivers report as errors other than a lost connection, like a read-only transaction
during a failover would be.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, Error, OperationalError, connection, connections
from django.test import override_settings
from django.utils import timezone

import django_tasks
from django_tasks import TaskResultStatus, signals
from django_tasks.backends.database import claims
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.backends.database.worker import (
    RELEASE_TRIES,
    Worker,
    WorkerOptions,
    _conflict,
    _passing,
)
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.conftest import DATABASE, drain, tasks_setting
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = DBTaskResult._meta.db_table
SCOPE = claims.Scope(alias="default", backend_name="default", queues=None)
TEXT_SERIALIZER = "django_tasks.serializers.JsonSerializer"  # str out: surrogates kept
needs_triggers = pytest.mark.skipif(
    connection.vendor == "mysql",
    reason="MariaDB reports a trigger's SIGNAL as OperationalError, the class of a lost "
    "connection, which the worker already retries; the refusal path is shown there by "
    "the 20 MB outcome in tests/reliability",
)


@contextlib.contextmanager
def database_backend(**options: Any) -> Iterator[Any]:
    with override_settings(TASKS=tasks_setting(DATABASE, OPTIONS=options)):
        yield django_tasks.task_backends["default"]


@contextlib.contextmanager
def refused_updates(condition: str) -> Iterator[None]:
    """Make the database refuse every update of the task table where `condition` holds."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f'CREATE TRIGGER tasks_test_refuse BEFORE UPDATE ON "{TABLE}" WHEN {condition} '
                "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
            )
        else:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION tasks_test_refuse() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'refused by the test trigger'; END $$"
            )
            cursor.execute(
                f'CREATE TRIGGER tasks_test_refuse BEFORE UPDATE ON "{TABLE}" '
                f"FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION tasks_test_refuse()"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER IF EXISTS tasks_test_refuse")
            else:
                cursor.execute(f'DROP TRIGGER IF EXISTS tasks_test_refuse ON "{TABLE}"')
                cursor.execute("DROP FUNCTION IF EXISTS tasks_test_refuse()")


RENEWAL = (
    "OLD.status = 'RUNNING' AND NEW.status = 'RUNNING' "
    "AND NEW.lease_expires_at <> OLD.lease_expires_at"
)


@contextlib.contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    """Run `worker` in a thread; on the way out, stop it and wait for it to end."""

    def run() -> None:
        try:
            worker.run()
        finally:
            connections.close_all()  # this thread's own, as a worker process's exit would

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield thread
    finally:
        worker.request_stop()
        thread.join(20)


def status_of(result: Any) -> str:
    return DBTaskResult.objects.get(id=result.id).status


def broken_receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
    raise RuntimeError("a metrics receiver with a bug")


def started(key: str, times: int = 1) -> Any:
    return lambda: Run.objects.filter(key=f"{key}:start").count() >= times


def errors_text() -> str:
    return "NEW.errors" if connection.vendor == "sqlite" else "NEW.errors::text"


def stopped_holding_one_unstarted_row(key: str) -> tuple[Any, Any, Worker]:
    """Stop a worker gracefully while it runs one task and holds another, unstarted.

    Return both results and the worker, once its thread has ended.
    """
    with database_backend() as backend:
        first = tasks.slow.using(backend="default").enqueue(key, 0.5)
        second = tasks.record_run.using(backend="default").enqueue("never-started")
        worker = Worker(backend, WorkerOptions(queues=None, prefetch=1, startup_delay=False))
        with running(worker) as thread:
            wait_for(started(key), timeout=10, what="the task to start")
            worker.request_stop()
            thread.join(20)
    assert not thread.is_alive()
    return first, second, worker


def test_graceful_stop__retries_handing_back_an_unstarted_row(monkeypatch, caplog):
    """A hand-back that fails as a lost connection does is tried again, not left held.

    On MariaDB the hand-back can be the victim of a deadlock (error 1213, an
    `OperationalError`) with the worker's own lease renewal, which locks the same rows
    through its index on `worker_id`. Held, the row would wait for its lease to expire
    and come back with a lost attempt it never made.
    """
    caplog.set_level(logging.WARNING, logger="django_tasks")
    real_release = claims.release
    calls: list[int] = []

    def release_refused_once(*args: Any, **kwargs: Any) -> int:
        calls.append(len(args[2]))
        if len(calls) == 1:
            # Shaped as the driver raises MariaDB's: the server's error number first.
            deadlock = Exception(1213, "Deadlock found when trying to get lock (a test's)")
            raise OperationalError(*deadlock.args) from deadlock
        return real_release(*args, **kwargs)

    monkeypatch.setattr(claims, "release", release_refused_once)
    first, second, _ = stopped_holding_one_unstarted_row("handback")

    assert calls == [1, 1]
    assert status_of(first) == TaskResultStatus.SUCCESSFUL
    left = DBTaskResult.objects.get(id=second.id)
    assert (left.status, left.worker_id, left.worker_ids, left.errors) == ("READY", None, [], [])
    assert "database_conflict action=release" in caplog.text
    assert "database_unavailable" not in caplog.text


def test_graceful_stop__gives_up_handing_back_after_a_few_tries(monkeypatch, caplog):
    """While the database keeps refusing the hand-back, the stop still ends in seconds,
    the running task's outcome written; the row held waits for its lease to expire."""
    caplog.set_level(logging.WARNING, logger="django_tasks")
    calls: list[float] = []

    def release_refused(*args: Any, **kwargs: Any) -> int:
        calls.append(time.monotonic())
        raise OperationalError("Lost connection to server during query (a test's)")

    monkeypatch.setattr(claims, "release", release_refused)
    first, second, worker = stopped_holding_one_unstarted_row("giveup")

    assert len(calls) == RELEASE_TRIES
    assert 2.5 < calls[-1] - calls[0] < 6  # 0.2 + 0.4 + 0.8 + 1.6 s apart
    assert status_of(first) == TaskResultStatus.SUCCESSFUL
    held = DBTaskResult.objects.get(id=second.id)
    assert (held.status, held.worker_id) == ("RUNNING", worker.worker_id)


@needs_triggers
def test_refused_renewals__the_heartbeat_keeps_going_and_no_lease_is_lost(caplog):
    caplog.set_level(logging.ERROR, logger="django_tasks")
    with database_backend(LEASE_SECONDS=0.9) as backend:  # renewed every 0.3 s
        result = tasks.slow.using(backend="default").enqueue("renewed", 3.0)
        worker = Worker(backend, WorkerOptions(queues=None, batch=True, startup_delay=False))
        with running(worker) as thread:
            with refused_updates(RENEWAL):
                wait_for(started("renewed"), timeout=10, what="the task to start")
                time.sleep(1.2)  # longer than the lease: every renewal meanwhile was refused
                assert DBTaskResult.objects.get(id=result.id).lease_expires_at < timezone.now()
            time.sleep(1.0)  # renewals are accepted again
            lease = DBTaskResult.objects.get(id=result.id).lease_expires_at
            # Another worker looking for expired leases now finds none.
            reclaimed = claims.reclaim_expired(SCOPE, 3)
            thread.join(20)

    assert not thread.is_alive()
    assert lease > timezone.now() - timedelta(seconds=1)
    assert reclaimed == 0
    row = DBTaskResult.objects.get(id=result.id)
    assert row.status == TaskResultStatus.SUCCESSFUL
    assert row.errors == []
    assert len(row.worker_ids) == 1
    assert "heartbeat_failed" in caplog.text
    assert "refused by the test trigger" in caplog.text


@needs_triggers
def test_outcome_no_write_can_store__recorded_as_a_lost_attempt_not_held(caplog):
    caplog.set_level(logging.WARNING, logger="django_tasks")
    with database_backend() as backend:
        result = tasks.add.using(backend="default").enqueue(2, 3)
        # Refuse every finish of the row until it carries a lost attempt, the FAILED
        # record that says why included: the worker must not keep holding it.
        finish = (
            "OLD.status = 'RUNNING' AND NEW.status IN ('SUCCESSFUL', 'FAILED') "
            f"AND {errors_text()} NOT LIKE '%WorkerLost%'"
        )
        with refused_updates(finish):
            drain(backend, max_tasks=1)
            held = DBTaskResult.objects.get(id=result.id)
        drain(backend)
        finished = result.refresh()

    assert held.status == TaskResultStatus.READY, held.status  # handed back, not RUNNING
    [lost] = held.errors
    assert lost["exception_class_path"] == claims.WORKER_LOST
    assert "could not store the outcome" in lost["traceback"]
    assert "refused by the test trigger" in lost["traceback"]
    assert finished.status == TaskResultStatus.SUCCESSFUL
    assert finished.return_value == 5
    assert finished.attempts == 2
    assert "task_outcome_unstorable" in caplog.text


def test_return_value_with_a_lone_surrogate__fails_that_task_and_the_worker_goes_on():
    with database_backend(SERIALIZER=TEXT_SERIALIZER) as backend:
        bad = tasks.decoded_file_name.using(backend="default").enqueue("report-\xff.csv")
        good = tasks.decoded_file_name.using(backend="default").enqueue("report.csv")
        drain(backend, concurrency=2)

        failed = bad.refresh()
        assert failed.status == TaskResultStatus.FAILED
        [error] = failed.errors
        assert error.exception_class_path == "django_tasks.exceptions.InvalidTask"
        assert "lone surrogate ('\\udcff')" in error.traceback
        assert good.refresh().return_value == "report.csv"


def test_lone_surrogate_argument__refused_at_enqueue_with_the_text_serializer():
    with (
        database_backend(SERIALIZER=TEXT_SERIALIZER),
        pytest.raises(django_tasks.InvalidTaskError, match="lone surrogate"),
    ):
        tasks.echo.using(backend="default").enqueue("report-\udcff.csv")
    assert not DBTaskResult.objects.exists()


@pytest.mark.parametrize("concurrency", [1, 2])
def test_receivers_that_raise__logged_and_the_tasks_still_finish(concurrency, caplog):
    caplog.set_level(logging.ERROR, logger="django.dispatch")
    with database_backend() as backend:
        results = [tasks.add.using(backend="default").enqueue(n, 1) for n in range(4)]
        signals.task_started.connect(broken_receiver)
        signals.task_finished.connect(broken_receiver)
        try:
            drain(backend, concurrency=concurrency)
        finally:
            signals.task_started.disconnect(broken_receiver)
            signals.task_finished.disconnect(broken_receiver)
        returned = [result.refresh().return_value for result in results]

    assert returned == [1, 2, 3, 4]
    failures = [r for r in caplog.records if r.name == "django.dispatch"]
    assert len(failures) == 8  # started and finished, for each of the 4 tasks
    assert all("a metrics receiver with a bug" in r.getMessage() for r in failures)


def test_receivers_that_raise__the_immediate_backend_returns_the_result(caplog):
    caplog.set_level(logging.ERROR, logger="django.dispatch")
    signals.task_finished.connect(broken_receiver)
    try:
        result = tasks.add.enqueue(2, 3)  # the test settings' default: immediate
    finally:
        signals.task_finished.disconnect(broken_receiver)

    assert result.return_value == 5
    assert "a metrics receiver with a bug" in caplog.text


@needs_triggers
def test_row_claimed_again_by_its_own_worker__the_earlier_attempt_does_not_write_over_it(
    caplog,
):
    # The worker's renewals are refused until its lease expires; the row is taken back
    # (as another worker's heartbeat would) while the attempt still runs, and the same
    # worker, with a thread free, claims it again. The first attempt's outcome must not
    # land on that second claim, wiping the lost attempt from the record.
    caplog.set_level(logging.WARNING, logger="django_tasks")
    with database_backend(LEASE_SECONDS=0.9) as backend:
        result = tasks.slow.using(backend="default").enqueue("twice", 2.0)
        worker = Worker(
            backend, WorkerOptions(queues=None, startup_delay=False, concurrency=2, interval=0.1)
        )
        with running(worker) as thread:
            with refused_updates(RENEWAL):
                wait_for(started("twice"), timeout=10, what="the task to start")
                time.sleep(1.2)  # the lease has expired
                assert claims.reclaim_expired(SCOPE, 3) == 1
                wait_for(started("twice", times=2), timeout=10, what="a second claim")
            wait_for(
                lambda: status_of(result) == TaskResultStatus.SUCCESSFUL,
                timeout=15,
                what="the second attempt to finish",
            )
        finished = result.refresh()

    assert not thread.is_alive()
    assert finished.attempts == 2
    [lost] = finished.errors
    assert lost.exception_class_path == claims.WORKER_LOST
    assert Run.objects.filter(key="twice:start").count() == 2
    assert Run.objects.filter(key="twice:end").count() == 2
    assert "task_lease_lost" in caplog.text


def test_prefetched_quick_task__its_outcome_is_written_while_a_long_one_runs():
    # Concurrency 1 runs tasks in the worker's main thread, which writes outcomes
    # between tasks; a quick task's result must not wait for the long one after it.
    with database_backend() as backend:
        quick = tasks.add.using(backend="default", priority=5).enqueue(2, 3)
        long = tasks.slow.using(backend="default").enqueue("long", 3.0)
        worker = Worker(
            backend, WorkerOptions(queues=None, batch=True, startup_delay=False, prefetch=2)
        )
        with running(worker) as thread:
            wait_for(started("long"), timeout=10, what="the long task to start")
            wait_for(
                lambda: status_of(quick) == TaskResultStatus.SUCCESSFUL,
                timeout=1.5,
                what="the quick task's outcome, while the long one runs",
            )
            long_status = status_of(long)
            thread.join(15)
        returned = quick.refresh().return_value

    assert long_status == TaskResultStatus.RUNNING  # written while the long one ran
    assert returned == 5
    assert not thread.is_alive()


@contextlib.contextmanager
def row_locked_elsewhere(row_id: Any) -> Iterator[None]:
    """Hold a write lock on the task row (SQLite: on the database) from another connection."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            else:
                other.set_autocommit(False)
                key = DBTaskResult._meta.pk.get_db_prep_value(uuid.UUID(row_id), other)
                cursor.execute(
                    f"SELECT id FROM {other.ops.quote_name(TABLE)} WHERE id = %s FOR UPDATE",
                    [key],
                )
        yield
    finally:
        with contextlib.suppress(Exception):
            other.rollback()
        other.close()


@contextlib.contextmanager
def short_lock_waits() -> Iterator[None]:
    """Make this test's connection give up on a lock at once (SQLite) or within a second."""
    short_wait = {
        "sqlite": "PRAGMA busy_timeout = 0",
        "postgresql": "SET lock_timeout = '50ms'",
        "mysql": "SET SESSION innodb_lock_wait_timeout = 1",
    }[connection.vendor]
    try:
        with connection.cursor() as cursor:
            cursor.execute(short_wait)
        yield
    finally:
        connection.close()  # the short lock wait was for this test only


def test_passing_errors__a_lock_timeout_is_retried_a_bad_statement_is_refused():
    result = tasks.add.using(backend="database").enqueue(1, 1)
    with short_lock_waits():
        update = DBTaskResult.objects.filter(id=result.id)
        with row_locked_elsewhere(result.id), pytest.raises(DatabaseError) as timed_out:
            update.update(priority=3)
        with pytest.raises(DatabaseError) as refused, connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM " + connection.ops.quote_name(TABLE))

    assert _passing(timed_out.value), timed_out.value
    assert not _passing(refused.value), refused.value


def test_worker_statement_meeting_a_lock__logged_as_a_conflict_not_an_outage(caplog):
    """A lock wait that times out is the database answering: `database_conflict`."""
    caplog.set_level(logging.WARNING, logger="django_tasks")
    result = tasks.add.using(backend="database").enqueue(1, 1)
    with database_backend() as backend, short_lock_waits():
        worker = Worker(backend, WorkerOptions(queues=None, startup_delay=False))
        update = DBTaskResult.objects.filter(id=result.id).update
        with row_locked_elsewhere(result.id):
            done = worker._database("reprioritize", update, priority=3)

    assert done is None  # given up for this round, as a claim or a renewal is
    assert "WARNING database_conflict action=reprioritize worker_id=" in _records(caplog)
    assert "database_unavailable" not in caplog.text
    assert DBTaskResult.objects.get(id=result.id).priority == 0


def _records(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{record.levelname} {record.getMessage()}" for record in caplog.records)


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite has one writer at a time: a second one waits or reports "
    "'database is locked' (the lock test above), it never deadlocks",
)
def test_conflict__a_real_deadlock_is_a_conflict_a_lost_connection_is_not():
    first = tasks.add.using(backend="database").enqueue(1, 1)
    second = tasks.add.using(backend="database").enqueue(2, 2)
    keys = [
        DBTaskResult._meta.pk.get_db_prep_value(uuid.UUID(result.id), connection)
        for result in (first, second)
    ]
    sql = f"UPDATE {connection.ops.quote_name(TABLE)} SET priority = 1 WHERE id = %s"
    both_locked = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def lock_in_order(order: list[Any]) -> None:
        other = connections.create_connection("default")
        try:
            other.set_autocommit(False)
            with other.cursor() as cursor:
                cursor.execute(sql, [order[0]])
                both_locked.wait()
                cursor.execute(sql, [order[1]])
        except DatabaseError as error:
            errors.append(error)
        finally:
            with contextlib.suppress(Exception):
                other.rollback()
            other.close()

    threads = [
        threading.Thread(target=lock_in_order, args=(order,)) for order in (keys, keys[::-1])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(errors) == 1, errors  # the server picked one victim; the other went on
    assert _conflict(errors[0]), errors[0]
    assert _passing(errors[0]), errors[0]
    gone = connections.create_connection("default")
    gone.ensure_connection()
    gone.connection.close()  # the driver's connection, under Django's feet
    with pytest.raises(Error) as lost, gone.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert not _conflict(lost.value), lost.value

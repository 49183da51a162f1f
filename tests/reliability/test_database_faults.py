"""Connections dropped under running workers, and the PostgreSQL server restarted.

Workers must reconnect and go on: every task finishes, and a task runs twice only
when its row shows a lost attempt. A task whose own query meets the dropped connection
fails like any task whose query fails; those are counted apart.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from django_tasks import TaskResultStatus
from django_tasks.backends.database.models import DBTaskResult
from tests.acceptance.conftest import wait_for
from tests.models import Run
from tests.reliability import reliability_tasks
from tests.reliability.conftest import (
    answering,
    audit,
    describe,
    drop_worker_connections,
    unfinished,
    wait_until_finished,
)

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

OPTIONS = [
    ("--interval", "0.2"),
    ("--interval", "0.2", "--concurrency", "2", "--prefetch", "2"),
    ("--interval", "0.2", "--prefetch", "4"),
]
RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL
DATABASE_ERRORS = {"django.db.utils.OperationalError", "django.db.utils.InterfaceError"}


def enqueue(plan, prefix: str) -> dict[str, str]:
    task = reliability_tasks.record.using(backend="database")
    results = task.enqueue_many(
        task.arguments(f"{prefix}-{n}", plan.task_seconds) for n in range(plan.fault_tasks)
    )
    return {result.id: f"{prefix}-{n}" for n, result in enumerate(results)}


def status_of(result) -> str:
    return DBTaskResult.objects.get(id=result.id).status


def logged(fleet, token: str) -> int:
    return sum(worker.output().count(token) for worker in fleet.started)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no server connections")
def test_dropped_connections__workers_reconnect_and_nothing_is_lost(fleet, plan, rng, report):
    keys = enqueue(plan, "dropped")
    for options in OPTIONS:
        fleet.start(*options)
    wait_for(lambda: unfinished() < plan.fault_tasks, what="the workers to start")

    dropped = rounds = 0
    while rounds < plan.fault_rounds and unfinished():
        time.sleep(rng.uniform(0.2, 0.6))
        dropped += drop_worker_connections()
        rounds += 1
    wait_until_finished(fleet, timeout=120)
    wedged = fleet.stop_gracefully()

    result = audit(keys)
    kind = "pg_terminate_backend" if connection.vendor == "postgresql" else "KILL CONNECTION"
    report.add_audit(
        f"worker connections dropped ({kind})",
        result,
        wedged,
        notes=f"{rounds} rounds, {dropped} connections dropped, "
        f"{logged(fleet, 'database_unavailable')} database_unavailable logged",
    )
    assert result.lost == [], describe(result.lost)
    assert result.twice_beyond_lease_rule == [], describe(result.twice_beyond_lease_rule)
    assert set(result.failed.values()) <= DATABASE_ERRORS, describe(result.failed)
    assert wedged == []
    assert rounds >= 1


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no server connections")
def test_connection_dropped_while_a_write_waits_for_its_retry__is_not_taken_for_a_refusal(
    fleet, report
):
    # The worker retries a failed write after a backoff wait. A write that fails right
    # after the database answered counts as refused, and three refusals record the task
    # as FAILED. Here every connection is dropped 50 ms into each wait, as a flaky
    # network or a busy KILL loop would: the write must still land, as SUCCESSFUL.
    result = reliability_tasks.record.using(backend="database").enqueue("waits", 1.0)
    worker = fleet.start("--interval", "0.2")
    wait_for(lambda: Run.objects.filter(key="waits").exists(), what="the task to start")
    drop_worker_connections()  # while the task sleeps: its result's write will fail

    token = "database_unavailable action=finish"
    seen = dropped = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and status_of(result) == RUNNING:
        count = worker.output().count(token)
        if count > seen:
            seen = count
            time.sleep(0.05)
            dropped += drop_worker_connections()
        time.sleep(0.01)
    wedged = fleet.stop_gracefully()
    row = DBTaskResult.objects.get(id=result.id)
    report.add(
        "connections dropped while a failed write waits for its retry",
        tasks=1,
        ran=Run.objects.filter(key="waits").count(),
        lost=int(row.status == RUNNING),
        twice=0,
        wedged=len(wedged),
        notes=f"{seen} failed writes, {dropped} connections dropped; the task {row.status}",
    )
    assert seen >= 1, worker.output()
    assert row.status == SUCCESSFUL, (row.errors, worker.output())
    assert "task_outcome_unstorable" not in worker.output()
    assert wedged == []


def test_server_restart__workers_reconnect_and_nothing_is_lost(
    fleet, plan, rng, report, postgres_cluster
):
    if plan.restarts == 0:
        pytest.skip("the server is restarted in the long form only (./dev soak)")
    keys = enqueue(plan, "restart")
    for options in OPTIONS:
        fleet.start(*options)
    wait_for(lambda: unfinished() < plan.fault_tasks, what="the workers to start")

    restarts = 0
    while restarts < plan.restarts and answering(unfinished) != 0:
        time.sleep(rng.uniform(1.0, 3.0))
        postgres_cluster.restart()
        restarts += 1
        connection.close()
    wait_until_finished(fleet, timeout=180)
    wedged = fleet.stop_gracefully()

    result = audit(keys)
    report.add_audit(
        "PostgreSQL server restarted (pg_ctlcluster restart)",
        result,
        wedged,
        notes=f"{restarts} restarts, "
        f"{logged(fleet, 'database_unavailable')} database_unavailable logged",
    )
    assert result.lost == [], describe(result.lost)
    assert result.twice_beyond_lease_rule == [], describe(result.twice_beyond_lease_rule)
    assert set(result.failed.values()) <= DATABASE_ERRORS, describe(result.failed)
    assert wedged == []
    assert restarts >= 1

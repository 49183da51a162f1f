"""Connections dropped under running workers, and the PostgreSQL server restarted.

Workers must reconnect and go on: every task finishes, and a task runs twice only
when its row shows a lost attempt. A task whose own query meets the dropped connection
fails like any task whose query fails; those are counted apart.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from tests.acceptance.conftest import wait_for
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
DATABASE_ERRORS = {"django.db.utils.OperationalError", "django.db.utils.InterfaceError"}


def enqueue(plan, prefix: str) -> dict[str, str]:
    task = reliability_tasks.record.using(backend="database")
    results = task.enqueue_many(
        task.arguments(f"{prefix}-{n}", plan.task_seconds) for n in range(plan.fault_tasks)
    )
    return {result.id: f"{prefix}-{n}" for n, result in enumerate(results)}


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

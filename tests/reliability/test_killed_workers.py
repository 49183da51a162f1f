"""Workers SIGKILLed at random while they drain a queue: nothing is lost, reruns are explained."""

from __future__ import annotations

import signal

import pytest

from django_tasks import TaskResultStatus
from django_tasks.backends.database.models import DBTaskResult
from tests.acceptance.conftest import wait_for
from tests.models import Run
from tests.reliability import reliability_tasks
from tests.reliability.conftest import (
    WORKER_LOST,
    audit,
    chaos,
    describe,
    unfinished,
    wait_until_finished,
)

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

SUCCESSFUL = TaskResultStatus.SUCCESSFUL
OPTIONS = [
    ("--interval", "0.2"),
    ("--interval", "0.2", "--concurrency", "2", "--prefetch", "2"),
    ("--interval", "0.2", "--prefetch", "4"),
]


def test_killed_workers__every_task_finishes_and_reruns_follow_the_lease_rule(
    fleet, plan, rng, report
):
    task = reliability_tasks.record.using(backend="database")
    results = task.enqueue_many(
        task.arguments(f"chaos-{n}", plan.task_seconds) for n in range(plan.chaos_tasks)
    )
    keys = {result.id: f"chaos-{n}" for n, result in enumerate(results)}
    for options in OPTIONS:
        fleet.start(*options)

    killed = chaos(
        fleet,
        rng,
        kills=plan.chaos_kills,
        pause=(0.2, 0.5),
        done=lambda: unfinished() == 0,
        replacement=lambda: rng.choice(OPTIONS),
    )
    wait_until_finished(fleet, timeout=120)
    wedged = fleet.stop_gracefully()

    result = audit(keys)
    report.add_audit(
        "workers SIGKILLed every 0.2-0.5 s",
        result,
        wedged,
        notes=f"{killed} kills, {len(fleet.started)} workers started",
    )
    assert result.lost == [], describe(result.lost)
    assert result.twice_beyond_lease_rule == [], describe(result.twice_beyond_lease_rule)
    assert result.failed == {}, describe(result.failed)
    assert wedged == []
    assert killed >= min(plan.chaos_kills, 3)


def test_killed_worker__restarted_under_the_same_id_does_not_keep_its_task_forever(fleet, report):
    """systemd restarts `db_worker --worker-id web-1` as web-1: the old claim must not live on."""
    task = reliability_tasks.hang.using(backend="database")
    result = task.enqueue("same-id", 1.0)
    first = fleet.start("--interval", "0.2", worker_id="web-1")
    wait_for(lambda: Run.objects.filter(key="same-id:start").exists(), what="the task to start")
    first.signal(signal.SIGKILL)
    first.wait()

    fleet.start("--interval", "0.2", worker_id="web-1")
    finished = _wait(lambda: DBTaskResult.objects.get(id=result.id).status == SUCCESSFUL, 20)
    wedged = fleet.stop_gracefully()

    row = DBTaskResult.objects.get(id=result.id)
    report.add(
        "worker SIGKILLed mid-task and restarted under the same --worker-id",
        tasks=1,
        ran=1,
        lost=0 if finished else 1,
        twice=0,
        wedged=len(wedged),
        notes=f"{row.status}, worker_ids {row.all_worker_ids()}, lease {row.lease_expires_at}",
    )
    assert finished, (row.status, row.worker_id, row.lease_expires_at)
    assert [error["exception_class_path"] for error in row.errors] == [WORKER_LOST]
    assert row.worker_ids == ["web-1", "web-1"]
    assert wedged == []


def _wait(condition, timeout: float) -> bool:
    try:
        wait_for(condition, timeout=timeout)
    except AssertionError:
        return False
    return True

"""Tasks that raise what should not be caught, kill their worker, hang, or break the database.

Each ends in a visible state with a clear error, and no worker is left wedged: it
takes new tasks afterwards, or it died and the lost-attempt limit stops the task.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from django_tasks import TaskResultStatus
from django_tasks.backends.database.models import DBTaskResult
from tests.acceptance.conftest import wait_for
from tests.models import Run
from tests.reliability import reliability_tasks
from tests.reliability.conftest import WORKER_LOST, audit, describe, unfinished

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED
CONCURRENCY = [pytest.param("1", id="inline"), pytest.param("2", id="threads")]

# (task, status, exception class path of the last error, a fragment of its traceback)
MISBEHAVIOURS: dict[str, tuple[Any, str, str | None, str | None]] = {
    "SystemExit": (
        reliability_tasks.raise_system_exit,
        FAILED,
        "builtins.SystemExit",
        "SystemExit: 3",
    ),
    "KeyboardInterrupt": (
        reliability_tasks.raise_keyboard_interrupt,
        FAILED,
        "builtins.KeyboardInterrupt",
        "KeyboardInterrupt",
    ),
    "MemoryError": (
        reliability_tasks.raise_memory_error,
        FAILED,
        "builtins.MemoryError",
        "bytearray(1 << 60)",
    ),
    "exception that cannot be printed": (
        reliability_tasks.raise_unprintable,
        FAILED,
        "tests.reliability.reliability_tasks.Unprintable",
        "Unprintable",
    ),
    "return value its annotation rejects": (
        reliability_tasks.return_wrong_type,
        FAILED,
        "django_tasks.exceptions.InvalidTask",
        "returned a value that does not match its return annotation",
    ),
    "autocommit left off": (reliability_tasks.leave_autocommit_off, SUCCESSFUL, None, None),
    "transaction left open": (reliability_tasks.leave_transaction_open, SUCCESSFUL, None, None),
    "connection closed under the worker": (
        reliability_tasks.close_connection,
        SUCCESSFUL,
        None,
        None,
    ),
}


def on_database(task):
    return task.using(backend="database")


def row_of(result) -> DBTaskResult:
    return DBTaskResult.objects.get(id=result.id)


def status_is(result, status) -> bool:
    return DBTaskResult.objects.filter(id=result.id, status=status).exists()


def runs(key: str) -> int:
    return Run.objects.filter(key=key).count()


def mismatch(name: str, row: DBTaskResult, key: str) -> str | None:
    """Describe how a misbehaving task's row differs from what it should be, or None."""
    _, status, path, fragment = MISBEHAVIOURS[name]
    last = row.errors[-1] if row.errors else {}
    if row.status != status:
        return f"{name}: {row.status}, not {status} ({last.get('traceback', '')[-300:]!r})"
    if path and (last.get("exception_class_path") != path or fragment not in last["traceback"]):
        return f"{name}: error {last.get('exception_class_path')}: {last.get('traceback')!r}"
    if runs(key) != 1 or row.attempts != 1:
        return f"{name}: ran {runs(key)} times in {row.attempts} attempts"
    return None


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_misbehaving_tasks__each_ends_visibly_and_the_worker_goes_on(fleet, report, concurrency):
    misbehaving, good = {}, {}
    for n, (name, (task, *_)) in enumerate(MISBEHAVIOURS.items()):
        misbehaving[name] = on_database(task).enqueue(f"bad-{n}")
        good[f"good-{n}"] = on_database(reliability_tasks.record).enqueue(f"good-{n}")
    worker = fleet.start("--interval", "0.2", "--concurrency", concurrency)

    finished = wait_for(lambda: unfinished() == 0 or None, timeout=60, what="every task")
    after = on_database(reliability_tasks.record).enqueue("after")
    took_more = bool(finished) and _wait(lambda: status_is(after, SUCCESSFUL), 30)
    wedged = fleet.stop_gracefully()

    problems = [
        problem
        for n, (name, result) in enumerate(misbehaving.items())
        if (problem := mismatch(name, row_of(result), f"bad-{n}"))
    ]
    uncommitted = Run.objects.filter(key__endswith=":uncommitted").count()
    if uncommitted:
        problems.append("the open transaction's write was committed")
    good_audit = audit({result.id: key for key, result in good.items()})
    if not took_more:
        wedged.append(f"{fleet.name(worker)} took no task afterwards")
    report.add(
        f"tasks raising SystemExit, KeyboardInterrupt, MemoryError, an unprintable "
        f"exception; returning a wrong type; leaving autocommit off, a transaction open, "
        f"the connection closed; concurrency {concurrency}",
        tasks=len(misbehaving) + len(good) + 1,
        ran=len(misbehaving) + good_audit.ran + int(runs("after") > 0),
        lost=len(good_audit.lost),
        twice=len(good_audit.twice_beyond_lease_rule),
        wedged=len(wedged),
        notes="; ".join(problems) or "each ended as expected",
    )
    assert problems == []
    assert good_audit.lost == []
    assert good_audit.ran == len(good)
    assert good_audit.executions == len(good)
    assert wedged == [], worker.output()[-3000:]


def _wait(condition, timeout: float) -> bool:
    try:
        wait_for(condition, timeout=timeout)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_poison_task__that_kills_its_worker_is_failed_after_three_lost_attempts(
    fleet, report, concurrency
):
    poison = on_database(reliability_tasks.exit_process).enqueue("poison")
    good = {
        result.id: f"good-{n}"
        for n in range(5)
        if (result := on_database(reliability_tasks.record).enqueue(f"good-{n}"))
    }
    options = ("--interval", "0.2", "--concurrency", concurrency)
    worker = fleet.start(*options)
    exits = []
    deadline = time.monotonic() + 60
    # A supervisor's restart loop (systemd's Restart=always), until the task is given up.
    while not status_is(poison, FAILED) and time.monotonic() < deadline:
        if worker.process.poll() is not None:
            exits.append(worker.process.returncode)
            worker = fleet.start(*options)
        time.sleep(0.05)
    wait_for(lambda: unfinished() == 0, timeout=30, what="the other tasks")
    after = on_database(reliability_tasks.record).enqueue("after")
    took_more = _wait(lambda: status_is(after, SUCCESSFUL), 30)
    wedged = fleet.stop_gracefully()
    if not took_more:
        wedged.append("the last worker took no task afterwards")

    row = row_of(poison)
    good_audit = audit(good)
    report.add(
        f"poison task (os._exit) with a supervisor restarting its worker, "
        f"concurrency {concurrency}",
        tasks=1 + len(good) + 1,
        ran=1 + good_audit.ran + int(runs("after") > 0),
        lost=len(good_audit.lost),
        twice=len(good_audit.twice_beyond_lease_rule),
        wedged=len(wedged),
        notes=f"poison {row.status} after {runs('poison')} runs, worker exits {exits}; "
        + good_audit.summary(),
    )
    assert row.status == FAILED
    assert [error["exception_class_path"] for error in row.errors] == [WORKER_LOST] * 3
    assert "(MAX_LOST_ATTEMPTS is 3), so it is not run again" in row.errors[-1]["traceback"]
    assert runs("poison") == 3
    assert exits == [7, 7, 7]
    assert good_audit.lost == []
    assert good_audit.failed == {}
    assert good_audit.twice_beyond_lease_rule == [], describe(good_audit.twice_beyond_lease_rule)
    assert wedged == []


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_stopped_worker__its_task_is_taken_over_and_its_late_result_dropped(
    fleet, report, concurrency
):
    result = on_database(reliability_tasks.hang).enqueue("stopped", 2.0)
    frozen = fleet.start("--interval", "0.2", "--concurrency", concurrency, worker_id="frozen")
    wait_for(lambda: runs("stopped:start") == 1, what="the task to start")

    frozen.signal(signal.SIGSTOP)
    rescuer = fleet.start("--interval", "0.2", worker_id="rescuer")
    wait_for(lambda: status_is(result, SUCCESSFUL), timeout=30, what="the rescuer to finish it")
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0, rescuer.output()
    frozen.signal(signal.SIGCONT)
    late = _wait(lambda: "task_lease_lost" in frozen.output(), 30)
    after = on_database(reliability_tasks.record).enqueue("after")
    took_more = _wait(lambda: status_is(after, SUCCESSFUL), 30)
    wedged = fleet.stop_gracefully()
    if not took_more:
        wedged.append("the resumed worker took no task afterwards")

    row = row_of(result)
    report.add(
        f"task hangs past the lease while its worker is SIGSTOPped, then SIGCONT, "
        f"concurrency {concurrency}",
        tasks=2,
        ran=1 + int(runs("after") > 0),
        lost=int(row.status != SUCCESSFUL),
        twice=0 if row.attempts == 2 and row.errors else 1,
        wedged=len(wedged),
        notes=f"taken over by {row.worker_ids[-1]}, late result "
        f"{'dropped (task_lease_lost)' if late else 'NOT reported'}; ran twice by the lease rule",
    )
    assert (row.status, row.worker_ids) == (SUCCESSFUL, ["frozen", "rescuer"])
    assert [error["exception_class_path"] for error in row.errors] == [WORKER_LOST]
    assert "Worker frozen stopped renewing its lease" in row.errors[0]["traceback"]
    assert (runs("stopped:start"), runs("stopped:end")) == (2, 2)
    assert late, frozen.output()[-3000:]
    assert row_of(after).worker_ids == ["frozen"]
    assert wedged == []


def test_long_task__its_lease_is_renewed_so_it_runs_once(fleet, report):
    result = on_database(reliability_tasks.hang).enqueue("long", 4.0)
    fleet.start("--interval", "0.2", worker_id="runner")
    wait_for(lambda: runs("long:start") == 1, what="the task to start")
    fleet.start("--interval", "0.2", worker_id="watcher")

    wait_for(lambda: status_is(result, SUCCESSFUL), timeout=30, what="the task to finish")
    wedged = fleet.stop_gracefully()

    row = row_of(result)
    report.add(
        "task runs 4 s, past its 1.5 s lease, while another worker watches",
        tasks=1,
        ran=1,
        lost=int(row.status != SUCCESSFUL),
        twice=int(runs("long:start") > 1),
        wedged=len(wedged),
        notes=f"attempts {row.attempts}, worker_ids {row.worker_ids}",
    )
    assert (row.worker_ids, row.errors) == (["runner"], [])
    assert (runs("long:start"), runs("long:end")) == (1, 1)
    assert wedged == []

"""Tasks that raise what should not be caught, kill their worker, hang, or break the database.

Each ends in a visible state with a clear error, and no worker is left wedged: it
takes new tasks afterwards, or it died and the lost-attempt limit stops the task.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from django.db import connection

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
    "exception message with a NUL and a lone surrogate": (
        reliability_tasks.raise_unstorable_message,
        FAILED,
        "builtins.ValueError",
        "ValueError: a NUL \\x00 and a lone surrogate \\ud800",
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
        f"exception, a message with a NUL and a lone surrogate; returning a wrong type; "
        f"leaving autocommit off, a transaction open, "
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


def _supervise(fleet, options, *, until, timeout: float) -> list[int]:
    """Run a worker, restarted whenever it exits (systemd's Restart=always), until `until()`.

    Return the exit codes of the workers that died.
    """
    worker = fleet.start(*options)
    exits = []
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        if worker.process.poll() is not None:
            exits.append(worker.process.returncode)
            worker = fleet.start(*options)
        time.sleep(0.05)
    return exits


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
    exits = _supervise(fleet, options, until=lambda: status_is(poison, FAILED), timeout=60)
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


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_poison_task__claimed_with_others_does_not_take_their_attempts(fleet, report, concurrency):
    # With --prefetch the poison task is claimed in one batch with the good ones, first in
    # line. Its first run takes the batch down with it (one lost attempt each); from then
    # on it runs alone, so only it reaches MAX_LOST_ATTEMPTS.
    poison = on_database(reliability_tasks.exit_process).enqueue("poison")
    good = {
        result.id: f"good-{n}"
        for n in range(8)
        if (result := on_database(reliability_tasks.record).enqueue(f"good-{n}"))
    }
    options = ("--interval", "0.2", "--concurrency", concurrency, "--prefetch", "10")
    exits = _supervise(fleet, options, until=lambda: unfinished() == 0, timeout=90)
    wedged = fleet.stop_gracefully()

    rows = DBTaskResult.objects.filter(id__in=list(good))
    most_lost = max(
        [error["exception_class_path"] for error in row.errors].count(WORKER_LOST) for row in rows
    )
    good_audit = audit(good)
    report.add(
        f"poison task claimed in one batch with 8 others (--prefetch 10), "
        f"concurrency {concurrency}",
        tasks=1 + len(good),
        ran=1 + good_audit.ran,
        lost=len(good_audit.lost),
        twice=len(good_audit.twice_beyond_lease_rule),
        wedged=len(wedged),
        notes=f"poison {row_of(poison).status} after {runs('poison')} runs; the others lost "
        f"at most {most_lost} attempt(s) each; " + good_audit.summary(),
    )
    assert row_of(poison).status == FAILED
    assert runs("poison") == 3
    assert exits == [7, 7, 7]
    assert most_lost <= 1
    assert good_audit.lost == []
    assert good_audit.failed == {}
    assert {row.status for row in rows} == {SUCCESSFUL}
    assert good_audit.twice_beyond_lease_rule == [], describe(good_audit.twice_beyond_lease_rule)
    assert wedged == []


def test_outcome_too_large_for_the_database_fails_that_task_and_the_worker_goes_on(fleet, report):
    # 20 MB: more than MariaDB's default max_allowed_packet (16 MB), which refuses the
    # write and drops the connection each time; PostgreSQL and SQLite store it.
    huge = on_database(reliability_tasks.return_huge).enqueue("huge", 20)
    small = on_database(reliability_tasks.record).enqueue("small")
    worker = fleet.start("--interval", "0.2", "--prefetch", "10")

    finished = _wait(lambda: unfinished() == 0, 90)
    after = on_database(reliability_tasks.record).enqueue("after")
    took_more = _wait(lambda: status_is(after, SUCCESSFUL), 30)
    wedged = fleet.stop_gracefully()
    row = row_of(huge)
    report.add(
        "a task returning 20 MB (over MariaDB's max_allowed_packet), claimed with another",
        tasks=3,
        ran=runs("huge") + runs("small") + runs("after"),
        lost=int(not finished),
        twice=0,
        wedged=len(wedged) + int(not took_more),
        notes=f"the large one {row.status}, the others {row_of(small).status}",
    )
    assert finished, "a task was left unfinished"
    assert took_more, worker.output()
    assert wedged == []
    assert status_is(small, SUCCESSFUL)
    assert runs("huge") == 1
    if connection.vendor == "mysql":
        assert row.status == FAILED
        assert row.errors[-1]["exception_class_path"] == "django_tasks.exceptions.InvalidTask"
        assert "could not be stored, so it is recorded as failed" in row.errors[-1]["traceback"]
        assert "task_outcome_unstorable" in worker.output()
    else:
        assert row.status == SUCCESSFUL
        assert len(huge.refresh().return_value) == 20 << 20


def test_poison_task__in_the_next_claim_finds_the_last_claims_results_written(fleet):
    """A task that kills its worker cannot take the results of an earlier claim with it.

    With `--prefetch 3` a claim takes four rows: the four good tasks (higher priority),
    then the poison on its own in the next claim, its first attempt, so not yet a
    suspect run alone. On PostgreSQL the good tasks' outcomes are written while that
    claim runs; they must be stored before the poison starts. Three rounds: with that
    write still in flight, most rounds lost them.
    """
    for round_ in range(3):
        DBTaskResult.objects.all().delete()
        good = [
            on_database(reliability_tasks.record).using(priority=10).enqueue(f"good-{round_}-{n}")
            for n in range(4)
        ]
        on_database(reliability_tasks.exit_process).enqueue(f"poison-{round_}")
        worker = fleet.start("--interval", "0.2", "--prefetch", "3")
        assert worker.wait(timeout=30) == 7, worker.output()[-3000:]

        statuses = DBTaskResult.objects.filter(id__in=[r.id for r in good])
        assert sorted(statuses.values_list("status", flat=True)) == [SUCCESSFUL] * 4, round_

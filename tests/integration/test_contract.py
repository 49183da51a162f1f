"""The contract every backend keeps, plus what is particular to the in-memory ones.

The `backend` fixture runs each contract test on the Immediate, Dummy and Database
backends; the database runs come to an end through a real worker, in this process.
"""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core import checks
from django.db import connections, transaction
from django.test import override_settings

import django_tasks
from django_tasks import (
    InvalidTaskBackendError,
    InvalidTaskError,
    RetryPolicy,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    task,
)
from django_tasks import checks as task_checks
from django_tasks.backends.database import DatabaseBackend
from django_tasks.backends.dummy import DummyBackend
from django_tasks.backends.immediate import ImmediateBackend
from tests import tasks
from tests.conftest import DATABASE, DUMMY, IMMEDIATE, drain, tasks_setting

pytestmark = pytest.mark.django_db(transaction=True)


def run(backend: django_tasks.BaseTaskBackend, result: django_tasks.TaskResult[Any]) -> Any:
    """Return the finished result: Immediate has run it; Dummy and Database run it now."""
    if isinstance(backend, DummyBackend):
        assert result.status == TaskResultStatus.READY
        backend.run_ready()
        return backend.get_result(result.id)
    if isinstance(backend, DatabaseBackend):
        assert result.status == TaskResultStatus.READY
        drain(backend)
        return backend.get_result(result.id)
    return result


@pytest.fixture(params=[IMMEDIATE, DUMMY, DATABASE], ids=["immediate", "dummy", "database"])
def backend(request):
    with override_settings(TASKS=tasks_setting(request.param)):
        yield django_tasks.task_backends["default"]


def test_enqueue__runs_and_returns_the_typed_value(backend):
    result = run(backend, tasks.add.enqueue(2, b=3))

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.is_finished
    assert result.attempts == 1
    assert result.errors == []
    assert result.backend == "default"
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert (result.args, result.kwargs) == ([2], {"b": 3})


def test_enqueue__failing_task_records_the_error(backend):
    result = run(backend, tasks.fails.enqueue("boom"))

    assert result.status == TaskResultStatus.FAILED
    assert result.exception_class is ValueError
    assert result.errors[0].exception_class_path == "builtins.ValueError"
    assert result.traceback.endswith("ValueError: boom\n")
    assert "tests/tasks.py" in result.traceback
    with pytest.raises(ValueError, match="failed, so it has no return value"):
        result.return_value  # noqa: B018


def test_enqueue__return_value_that_breaks_its_annotation_fails_the_task(backend):
    result = run(backend, tasks.wrong_return.enqueue(5))

    assert result.status == TaskResultStatus.FAILED
    assert result.exception_class is InvalidTaskError
    assert (
        "Task 'tests.tasks.wrong_return' returned a value that does not match its return "
        "annotation:\n  - 'return value': Input should be a valid integer (got str: '5')"
    ) in result.traceback


def test_enqueue__none_annotated_task__returns_none_or_fails(backend):
    done = run(backend, tasks.returns_despite_none.enqueue(None))
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value is None

    result = run(backend, tasks.returns_despite_none.enqueue(5))
    assert result.status == TaskResultStatus.FAILED
    assert (
        "Task 'tests.tasks.returns_despite_none' returned a value that does not match its "
        "return annotation:\n  - 'return value': Input should be None (got int: 5)"
    ) in result.traceback


def test_enqueue__async_task_runs(backend):
    assert run(backend, tasks.async_add.enqueue(1, 2)).return_value == 3


def test_enqueue__context_receives_the_running_result(backend):
    result = run(backend, tasks.with_context.enqueue("ada"))

    assert result.return_value == f"ada:1:{result.id}"
    assert result.args == ["ada"]


def test_enqueue__sends_signals_in_order(backend, signal_log):
    run(backend, tasks.add.enqueue(1, 2))
    run(backend, tasks.fails.enqueue("x"))

    sender = type(backend)
    assert signal_log.events == [
        ("enqueued", "READY", sender),
        ("started", "RUNNING", sender),
        ("finished", "SUCCESSFUL", sender),
        ("enqueued", "READY", sender),
        ("started", "RUNNING", sender),
        ("finished", "FAILED", sender),
    ]


def test_get_result__finds_the_result_and_checks_its_task(backend):
    result = run(backend, tasks.add.enqueue(1, 2))

    assert tasks.add.get_result(result.id) == result
    assert backend.get_result(result.id) == result
    with pytest.raises(TaskResultMismatch, match=r"belongs to task 'tests\.tasks\.add'"):
        tasks.fails.get_result(result.id)
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result("no-such-id")


@pytest.fixture
async def close_thread_connections():
    """Close the connections sync_to_async's thread opened, so the test database can go."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.usefixtures("close_thread_connections")
async def test_aget_result__finds_the_result(backend):
    result = await tasks.add.aenqueue(1, 2)
    if isinstance(backend, DummyBackend):
        backend.run_ready()
    if isinstance(backend, DatabaseBackend):
        await sync_to_async(drain)(backend)

    fetched = await tasks.add.aget_result(result.id)

    assert fetched.return_value == 3
    assert (await result.arefresh()).return_value == 3


def test_refresh__returns_a_fresh_copy_and_leaves_the_original(dummy):
    result = tasks.add.enqueue(1, 2)
    dummy.run_ready()

    fresh = result.refresh()

    assert (result.status, fresh.status) == (TaskResultStatus.READY, TaskResultStatus.SUCCESSFUL)
    assert fresh.return_value == 3
    with pytest.raises(ValueError, match="has not finished yet"):
        result.return_value  # noqa: B018


def test_call__runs_the_function_directly():
    assert tasks.add.call(1, 2) == 3
    assert tasks.async_add.call(1, 2) == 3


async def test_acall__runs_the_function_directly():
    assert await tasks.add.acall(1, 2) == 3
    assert await tasks.async_add.acall(1, 2) == 3


def test_task__names():
    assert tasks.add.name == "add"
    assert tasks.add.module_path == "tests.tasks.add"
    assert isinstance(tasks.add.get_backend(), ImmediateBackend)


def test_using__changes_options_and_keeps_the_original(dummy):
    moved = tasks.add.using(priority=5, queue_name="reports")

    assert (moved.priority, moved.queue_name) == (5, "reports")
    assert (tasks.add.priority, tasks.add.queue_name) == (0, "default")
    assert moved.enqueue(1, 2).task.queue_name == "reports"


def test_dummy__keeps_deferred_tasks_until_due(dummy):
    later = tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 2)
    now = tasks.add.using(run_after=datetime.now(UTC) - timedelta(seconds=1)).enqueue(3, 4)

    assert [r.id for r in dummy.run_ready()] == [now.id]
    assert isinstance(later.task.run_after, datetime)
    assert later.task.run_after > datetime.now(UTC) + timedelta(minutes=59)
    assert [r.return_value for r in dummy.run_ready(include_deferred=True)] == [3]


def test_dummy__runs_higher_priority_first(dummy):
    low = tasks.add.using(priority=-5).enqueue(1, 1)
    high = tasks.add.using(priority=50).enqueue(2, 2)

    assert [r.id for r in dummy.run_ready()] == [high.id, low.id]


def test_dummy__clear_forgets_everything(dummy):
    tasks.add.enqueue(1, 2)

    dummy.clear()

    assert dummy.results == []
    assert dummy.run_ready() == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: tasks.add.using(priority=101),
            "priority 101 is outside -100..100",
            id="priority-high",
        ),
        pytest.param(
            lambda: tasks.add.using(priority=-101), "priority -101 is outside", id="priority-low"
        ),
        pytest.param(
            lambda: tasks.add.using(queue_name="nope"), "queue 'nope' is not in QUEUES", id="queue"
        ),
        pytest.param(
            lambda: tasks.add.using(run_after=timedelta(1)),
            "does not support run_after",
            id="no-defer",
        ),
    ],
)
def test_using__invalid_options_are_rejected(immediate, make, message):
    with pytest.raises(InvalidTaskError, match=message):
        make()


@pytest.mark.parametrize("backoff", [math.inf, math.nan, 0.5])
def test_retry_policy__backoff_must_be_finite_and_at_least_1(backoff):
    with pytest.raises(InvalidTaskError, match="a finite backoff >= 1"):
        RetryPolicy(max_attempts=3, backoff=backoff)


def test_run_after__must_be_aware(dummy):
    with pytest.raises(InvalidTaskError, match="run_after must be an aware datetime"):
        tasks.add.using(run_after=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("run_after", "shown"),
    [
        pytest.param("tomorrow", "str 'tomorrow'", id="text"),
        pytest.param(5, "int 5", id="number"),
        pytest.param(date(2030, 1, 1), "date datetime.date(2030, 1, 1)", id="date"),
    ],
)
def test_run_after__must_be_a_datetime_or_a_timedelta(dummy, run_after, shown):
    with pytest.raises(InvalidTaskError) as error:
        tasks.add.using(run_after=run_after)

    assert str(error.value) == (
        "Task 'tests.tasks.add' is invalid: run_after must be an aware datetime or a "
        f"timedelta (from now), not {shown}."
    )


def test_queues__empty_list_disables_validation(settings):
    settings.TASKS = tasks_setting(IMMEDIATE, QUEUES=[])

    assert tasks.add.using(queue_name="anything").enqueue(1, 1).return_value == 2


def test_priority__needs_a_backend_that_supports_it(settings):
    settings.TASKS = {"default": {"BACKEND": "tests.backends.NoFeaturesBackend"}}

    with pytest.raises(InvalidTaskError, match="does not support priorities"):
        tasks.add.using(priority=1)
    with pytest.raises(InvalidTaskError, match="does not run async functions"):
        tasks.async_add.enqueue(1, 2)


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit__waits_for_the_commit(settings, signal_log):
    settings.TASKS = tasks_setting(IMMEDIATE, ENQUEUE_ON_COMMIT=True)

    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert (result.status, result.enqueued_at, signal_log.events) == ("READY", None, [])
        with pytest.raises(TaskResultDoesNotExist):
            result.refresh()

    assert result.refresh().return_value == 3
    assert [event[0] for event in signal_log.events] == ["enqueued", "started", "finished"]


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit__rollback_never_enqueues(dummy, signal_log):
    on_commit = dataclasses.replace(tasks.add, enqueue_on_commit=True)  # decorator wins

    def enqueue_then_roll_back() -> None:
        with transaction.atomic():
            on_commit.enqueue(1, 2)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        enqueue_then_roll_back()

    assert dummy.results == []
    assert signal_log.events == []


@pytest.mark.django_db
def test_enqueue_on_commit__off_by_default(dummy):
    with transaction.atomic():
        tasks.add.enqueue(1, 2)
        assert len(dummy.results) == 1


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        pytest.param(
            {"default": {"BACKEND": "no.such.Backend"}},
            "Could not import backend 'no.such.Backend'",
            id="import",
        ),
        pytest.param(
            {"default": {"BACKEND": "django_tasks.tasks.Task"}},
            "is not a subclass of",
            id="not-a-backend",
        ),
        pytest.param({"default": {}}, "must be a dict with a 'BACKEND'", id="no-backend"),
        pytest.param(
            {"default": {"BACKEND": IMMEDIATE, "OPTIONS": {"SERIALIZER": "no.Such"}}},
            r"TASKS\['default'\]\['OPTIONS'\] is invalid: SERIALIZER: Invalid python path",
            id="serializer-path",
        ),
        pytest.param(
            {"default": {"BACKEND": IMMEDIATE, "OPTIONS": {"SERIALISER": "x"}}},
            "SERIALISER: Extra inputs are not permitted",
            id="unknown-option",
        ),
        *(
            pytest.param(
                {"default": {"BACKEND": IMMEDIATE, "QUEUES": queues}},
                r"TASKS\['default'\]\['QUEUES'\] must be a list of queue names \(or \[\] "
                rf"to allow any\), not {re.escape(repr(queues))}\.",
                id=f"queues-{queues!r}",
            )
            for queues in (None, 5, "default", ["default", 1])
        ),
        pytest.param(
            {"default": {"BACKEND": IMMEDIATE, "ENQUEUE_ON_COMMIT": "false"}},
            r"TASKS\['default'\]\['ENQUEUE_ON_COMMIT'\] must be True or False, not 'false'\.",
            id="enqueue-on-commit-text",
        ),
        *(
            pytest.param(
                {"default": {"BACKEND": DATABASE, "OPTIONS": {"LEASE_SECONDS": seconds}}},
                f"LEASE_SECONDS: {message}",
                id=f"lease-{seconds}",
            )
            for seconds, message in (
                (0, "Input should be greater than 0"),
                (math.inf, "Input should be a finite number"),
                (math.nan, "Input should be a finite number"),
                (1e12, "Input should be less than or equal to 86400"),
            )
        ),
    ],
)
def test_backends__bad_settings_raise_and_fail_the_check(settings, setting, message):
    settings.TASKS = setting

    with pytest.raises(InvalidTaskBackendError, match=message):
        django_tasks.task_backends["default"]
    [error] = task_checks.check_backends()
    assert (error.id, error.obj, error.level) == (
        "django_tasks.E001",
        "TASKS['default']",
        checks.ERROR,
    )


def declared_on_a_broken_backend(a: int) -> int:
    return a


def test_backends__a_task_declared_on_a_backend_that_cannot_be_built__left_to_the_check(
    settings,
):
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE, "OPTIONS": {"SERIALISER": "x"}}}

    declared = task(declared_on_a_broken_backend)  # as when its tasks module is imported

    with pytest.raises(InvalidTaskBackendError, match="SERIALISER: Extra inputs"):
        declared.enqueue(1)
    assert [error.id for error in task_checks.check_backends()] == ["django_tasks.E001"]
    # Given to using() later, in the project's code, the backend is refused at once.
    with pytest.raises(InvalidTaskBackendError, match="SERIALISER: Extra inputs"):
        declared.using(priority=1)
    with pytest.raises(InvalidTaskBackendError, match="SERIALISER: Extra inputs"):
        tasks.add.using(backend="default")


def test_backends__unknown_alias_is_named():
    with pytest.raises(
        InvalidTaskBackendError, match="No task backend 'other' in the TASKS setting"
    ):
        tasks.add.using(backend="other")


def test_checks__pass_for_a_good_project():
    assert task_checks.check_backends() == []
    assert [m for m in task_checks.check_task_signatures() if "broken" not in m.obj] == []


def test_checks__report_an_annotation_that_never_resolves():
    from tests import broken_tasks

    messages = [
        m for m in task_checks.check_task_signatures() if m.obj == broken_tasks.forward.module_path
    ]

    assert [(m.id, m.msg) for m in messages] == [
        (
            "django_tasks.E002",
            "The annotations of task 'tests.broken_tasks.forward' cannot be resolved: name "
            "'DefinedLater' is not defined. Make every type in the signature importable from "
            "the task's module.",
        )
    ]
    with pytest.raises(InvalidTaskError, match="cannot be resolved"):
        broken_tasks.forward.enqueue(None)


def test_enqueue_many__validates_every_call_then_enqueues_them(backend, signal_log):
    results = tasks.add.enqueue_many(tasks.add.arguments(n, b=n) for n in range(3))

    assert [run(backend, result).return_value for result in results] == [0, 2, 4]
    assert [event[0] for event in signal_log.events].count("enqueued") == 3


def test_enqueue_many__one_bad_call_enqueues_none(backend, signal_log):
    calls = [tasks.add.arguments(1, 2), tasks.add.arguments("x", 2), tasks.add.arguments(1)]

    with pytest.raises(InvalidTaskError) as caught:
        tasks.add.enqueue_many(calls)

    assert str(caught.value) == (
        "2 of the calls to task 'tests.tasks.add' are invalid, so none was enqueued:\n"
        "call 1: Invalid arguments for task 'tests.tasks.add':\n"
        "    - 'a': Input should be a valid integer (got str: 'x')\n"
        "call 2: Invalid arguments for task 'tests.tasks.add':\n"
        "    - 'b': missing required argument"
    )
    assert [e["loc"] for e in caught.value.errors] == [("call", 1, "a"), ("call", 2, "b")]
    assert signal_log.events == []


async def test_aenqueue_many__enqueues(backend, close_thread_connections):
    results = await tasks.add.aenqueue_many([tasks.add.arguments(1, 1)])

    assert len(results) == 1


def test_retry__fails_twice_then_succeeds(backend, signal_log):
    result = run_to_the_end(backend, tasks.flaky.enqueue(3))

    assert (result.status, result.return_value, result.attempts) == ("SUCCESSFUL", 3, 3)
    assert [error.exception_class for error in result.errors] == [ConnectionError] * 2
    assert "attempt 2 failed" in result.errors[1].traceback
    assert [name for name, status, _ in signal_log.events] == [
        "enqueued",
        "started",
        "retried",
        "started",
        "retried",
        "started",
        "finished",
    ]


def test_retry__gives_up_after_max_attempts_keeping_every_error(backend):
    result = run_to_the_end(backend, tasks.flaky.enqueue(10))

    assert (result.status, result.attempts, len(result.errors)) == ("FAILED", 3, 3)
    assert result.exception_class is ConnectionError


def test_retry__other_exceptions_fail_at_once(backend):
    result = run_to_the_end(backend, tasks.not_retryable.enqueue("no"))

    assert (result.status, result.attempts, result.exception_class) == ("FAILED", 1, ValueError)


def test_retry__a_task_can_ask_for_it(backend):
    result = run_to_the_end(backend, tasks.asks_for_retry.enqueue())

    assert (result.status, result.return_value) == ("SUCCESSFUL", 2)
    assert result.errors[0].exception_class_path == "django_tasks.exceptions.Retry"


def test_retry__using_replaces_the_policy(backend):
    once = tasks.flaky.using(retry=RetryPolicy(max_attempts=1))

    assert run_to_the_end(backend, once.enqueue(2)).status == "FAILED"


def run_to_the_end(backend, result):
    """Run a result until it is finished, retries included."""
    if isinstance(backend, DatabaseBackend):
        drain(backend)
        return backend.get_result(result.id)
    return run(backend, result)

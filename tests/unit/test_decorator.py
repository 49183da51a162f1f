"""What `@task` checks when it decorates, before anything is enqueued."""

from __future__ import annotations

import socket

import pytest

from django_tasks import InvalidTaskError, Task, TaskError, TaskResultStatus, task
from tests import tasks


def test_task__bare_and_with_options_make_tasks():
    assert isinstance(tasks.add, Task)
    assert (tasks.in_queue.priority, tasks.in_queue.queue_name) == (10, "reports")
    assert tasks.with_context.takes_context is True


def test_task__nested_function_is_rejected():
    def inner(a: int) -> int:
        return a

    with pytest.raises(InvalidTaskError, match="must be defined at module level"):
        task(inner)


def test_task__lambda_is_rejected():
    with pytest.raises(InvalidTaskError, match="must be defined at module level"):
        task(lambda: None)


def test_task__takes_context_needs_a_parameter_for_it():
    with pytest.raises(InvalidTaskError, match="has no positional first parameter"):
        task(takes_context=True)(tasks.no_parameters)


def test_task__unsupported_type_is_rejected_at_decoration():
    with pytest.raises(InvalidTaskError, match="uses a type pydantic cannot validate"):
        task(tasks.takes_a_socket)


def test_task__is_registered_by_module_path():
    from django_tasks.tasks import registered_task

    assert registered_task("tests.tasks.add") is tasks.add
    assert registered_task("os.system") is None


def test_task_error__exception_class_must_be_an_exception():
    error = TaskError(exception_class_path="django_tasks.tasks.Task", traceback="")

    with pytest.raises(ValueError, match="does not name an exception class"):
        error.exception_class  # noqa: B018


def test_status__labels_and_seed_aliases():
    assert TaskResultStatus.READY.label == "Ready"
    assert [status.value for status in TaskResultStatus] == [
        "READY",
        "RUNNING",
        "FAILED",
        "SUCCESSFUL",
    ]
    assert socket  # the module tasks.takes_a_socket refers to


def test_call__builds_the_context_of_a_context_task():
    text = tasks.with_context.call("ada")

    name, attempt, result_id = text.split(":", 2)
    assert (name, attempt) == ("ada", "1")
    assert result_id.startswith("call-")


async def test_acall__builds_the_context_of_a_context_task():
    assert (await tasks.with_context.acall("ada")).startswith("ada:1:call-")

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


@pytest.mark.parametrize(
    ("function", "message"),
    [
        pytest.param(
            tasks.takes_size_or_float,
            "Task 'tests.tasks.takes_size_or_float' has a union whose members JSON cannot tell "
            "apart, in parameter 'size': in Size | float, <Size.SMALL: 1> (Size) is stored as "
            "1 and would reach the task as 1.0 (float). Use one type there, or a discriminated "
            "union (pydantic models that each carry a Literal tag field).",
            id="int-enum-or-float",
        ),
        pytest.param(
            tasks.returns_key_or_text,
            "in the return annotation: in UUID | str, UUID('00000000-0000-0000-0000-000000000001') "
            "(UUID) is stored as '00000000-0000-0000-0000-000000000001' and would reach the "
            "task as '00000000-0000-0000-0000-000000000001' (str)",
            id="return-uuid-or-str",
        ),
    ],
)
def test_task__union_that_json_cannot_tell_apart_is_rejected_at_decoration(function, message):
    with pytest.raises(InvalidTaskError) as caught:
        task(function)

    assert message in str(caught.value)


def test_task__model_in_a_union_with_more_than_none_is_rejected_without_a_query():
    # No database here: a query would fail the test with pytest-django's own error.
    with pytest.raises(InvalidTaskError, match="a union may pair a model only with None"):
        task(tasks.takes_run_or_key)


def test_task__union_member_validator_raising_does_not_escape_decoration():
    # The KeyError would also stop a worker reading back the str "0": refused, as such.
    with pytest.raises(InvalidTaskError, match="'0' \\(str\\) is stored as '0' and could not"):
        task(tasks.takes_picky_union)


def test_task__discriminated_union_is_accepted_and_arrives_as_its_member():
    result = tasks.area.enqueue(tasks.Square(side=2.0), "abc")

    assert result.return_value == 6.0
    assert result.args == [tasks.Square(side=2.0), "abc"]


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

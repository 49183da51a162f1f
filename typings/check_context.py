"""Type-level checks for `takes_context=True` tasks.

The context is passed by the backend, so it is not part of the task's parameters: it is
neither given to `enqueue` nor allowed there. mypy and pyright check this file; nothing
runs it.
"""

from __future__ import annotations

from typing import Any, assert_type

from django_tasks import Task, TaskContext, TaskResult, task


@task(takes_context=True)
def greet(context: TaskContext[str], name: str) -> str:
    return f"{context.attempt} {name}"


@task(takes_context=True, priority=1, queue_name="default")
async def retry(context: TaskContext[int], times: int, *, loud: bool = False) -> int:
    return context.attempt * times


@task(takes_context=True)
def context_only(context: TaskContext[Any]) -> None:
    return None


def no_context(name: str) -> str:
    return name


def wrong_first_parameter(context: int, name: str) -> str:
    return name


# --- The task's parameters leave the context out.

greet_task: Task[[str], str] = greet
retry_task: Task[..., int] = retry
context_only_task: Task[[], None] = context_only
with_context_param: Task[[TaskContext[str], str], str] = greet  # type: ignore[assignment]

assert_type(greet.enqueue("Ada"), TaskResult[str])
assert_type(greet.enqueue(name="Ada").return_value, str)
assert_type(retry.enqueue(3), TaskResult[int])
assert_type(retry.enqueue(3, loud=True).return_value, int)
assert_type(context_only.enqueue(), TaskResult[None])
assert_type(greet.using(priority=2).enqueue("Ada"), TaskResult[str])
assert_type(greet.get_result("id"), TaskResult[str])

greet.enqueue()  # type: ignore[call-arg]
greet.enqueue(1)  # type: ignore[arg-type]
retry.enqueue("3")  # type: ignore[arg-type]
retry.enqueue(3, True)  # type: ignore[call-arg]
context_only.enqueue(None)  # type: ignore[call-arg]


def enqueue_with_a_context(context: TaskContext[str]) -> None:
    greet.enqueue(context, "Ada")  # type: ignore[arg-type, call-arg]
    greet.enqueue(context=context, name="Ada")  # type: ignore[call-arg]
    context_only.enqueue(context)  # type: ignore[call-arg]


async def aenqueue_with_a_context(context: TaskContext[int]) -> None:
    assert_type(await retry.aenqueue(3), TaskResult[int])
    assert_type((await retry.aenqueue(times=3)).return_value, int)
    await retry.aenqueue(context, 3)  # type: ignore[arg-type, call-arg]


# `call`/`acall` of a context task build the context themselves, so they take the
# same arguments as `enqueue` (tests/unit/test_decorator.py runs this).
assert_type(greet.call("Ada"), str)
greet.call()  # type: ignore[call-arg]


async def acall_a_context_task() -> None:
    assert_type(await greet.acall("Ada"), str)


# --- TaskContext gives the running result.


def use_context(context: TaskContext[str]) -> None:
    assert_type(context.attempt, int)
    assert_type(context.task_result, TaskResult[str])
    assert_type(context.task_result.task, Task[Any, str])
    context.task_result = greet.enqueue("Ada")  # type: ignore[misc]


# --- A function without a leading TaskContext parameter is rejected.

task(takes_context=True)(no_context)  # type: ignore[arg-type]
task(takes_context=True)(wrong_first_parameter)  # type: ignore[arg-type]

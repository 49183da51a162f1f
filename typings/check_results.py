"""Type-level checks for `TaskResult`, `TaskResultStatus` and `TaskError`.

mypy and pyright check this file; nothing runs it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, assert_type

from pydantic import BaseModel

from django_tasks import ResultStatus, Task, TaskError, TaskResult, TaskResultStatus, task


class Receipt(BaseModel):
    order_id: int
    total: Decimal


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def fetch(url: str) -> int:
    return len(url)


@task
def checkout(order_id: int) -> Receipt:
    return Receipt(order_id=order_id, total=Decimal("9.99"))


@task
async def acheckout(order_id: int) -> Receipt:
    return Receipt(order_id=order_id, total=Decimal("9.99"))


@task
def maybe(flag: bool) -> int | None:
    return 1 if flag else None


@task
def ping() -> None:
    return None


# --- TaskResult[T] from sync and async tasks; return_value is T itself.

result = add.enqueue(1, 2)
assert_type(result, TaskResult[int])
assert_type(result.return_value, int)
assert_type(fetch.enqueue("x"), TaskResult[int])
assert_type(fetch.enqueue("x").return_value, int)
assert_type(maybe.enqueue(True).return_value, int | None)
assert_type(ping.enqueue().return_value, None)

# Not `int | None`, not a coroutine: usable as an int without narrowing or awaiting.
doubled: int = result.return_value * 2
fetched: int = fetch.enqueue("x").return_value + 1
not_a_str: str = result.return_value  # type: ignore[assignment]
result.return_value.upper()  # type: ignore[attr-defined]
plus_none = maybe.enqueue(True).return_value + 1  # type: ignore[operator]
bad_result: TaskResult[str] = add.enqueue(1, 2)  # type: ignore[assignment]

# A pydantic model comes back as that model.
assert_type(checkout.enqueue(1), TaskResult[Receipt])
assert_type(checkout.enqueue(1).return_value, Receipt)
assert_type(checkout.enqueue(1).return_value.total, Decimal)
assert_type(acheckout.enqueue(1).return_value, Receipt)
missing = checkout.enqueue(1).return_value.missing  # type: ignore[attr-defined]


# --- The result's other fields.

assert_type(result.id, str)
assert_type(result.status, TaskResultStatus)
assert_type(result.enqueued_at, datetime | None)
assert_type(result.started_at, datetime | None)
assert_type(result.finished_at, datetime | None)
assert_type(result.last_attempted_at, datetime | None)
assert_type(result.args, list[Any])
assert_type(result.kwargs, dict[str, Any])
assert_type(result.backend, str)
assert_type(result.errors, list[TaskError])
assert_type(result.worker_ids, list[str])
assert_type(result.is_finished, bool)
assert_type(result.attempts, int)
assert_type(result.exception_class, type[BaseException] | None)
assert_type(result.traceback, str | None)
assert_type(result.task, Task[Any, int])
assert_type(result.task.enqueue(1, 2), TaskResult[int])
assert_type(result.evolve(status=TaskResultStatus.RUNNING), TaskResult[int])

# Results are frozen: refresh() and evolve() return new ones.
result.status = TaskResultStatus.FAILED  # type: ignore[misc]
result.return_value = 3  # type: ignore[misc]


# --- Fetching results again keeps T.

assert_type(result.refresh(), TaskResult[int])
assert_type(result.refresh().return_value, int)
assert_type(checkout.enqueue(1).refresh().return_value, Receipt)
assert_type(add.get_result("id"), TaskResult[int])
assert_type(add.get_result("id").return_value, int)
assert_type(fetch.get_result("id"), TaskResult[int])
assert_type(checkout.get_result("id").return_value, Receipt)
add.get_result(1)  # type: ignore[arg-type]
add.get_result()  # type: ignore[call-arg]


async def fetch_from_async_code() -> None:
    assert_type(await result.arefresh(), TaskResult[int])
    assert_type(await add.aget_result("id"), TaskResult[int])
    assert_type((await add.aget_result("id")).return_value, int)
    assert_type((await fetch.aget_result("id")).return_value, int)
    assert_type((await acheckout.aget_result("id")).return_value, Receipt)
    assert_type((await (await acheckout.aenqueue(1)).arefresh()).return_value, Receipt)
    (await add.aget_result("id")).return_value.upper()  # type: ignore[attr-defined]


# --- TaskResultStatus: Django 6.1's members, and the backport's names as aliases.

assert_type(TaskResultStatus.READY, Literal[TaskResultStatus.READY])
assert_type(TaskResultStatus.RUNNING, Literal[TaskResultStatus.RUNNING])
assert_type(TaskResultStatus.FAILED, Literal[TaskResultStatus.FAILED])
assert_type(TaskResultStatus.SUCCESSFUL, Literal[TaskResultStatus.SUCCESSFUL])
assert_type(TaskResultStatus.NEW, TaskResultStatus)
assert_type(TaskResultStatus.SUCCEEDED, TaskResultStatus)
assert_type(ResultStatus.NEW, TaskResultStatus)
assert_type(ResultStatus.SUCCEEDED, TaskResultStatus)
assert_type(ResultStatus.READY, Literal[TaskResultStatus.READY])
assert_type(TaskResultStatus.READY.value, str)
backport_status: ResultStatus = result.status
succeeded: bool = result.status == ResultStatus.SUCCEEDED
pending = TaskResultStatus.PENDING  # type: ignore[attr-defined]
not_a_status: TaskResultStatus = "READY"  # type: ignore[assignment]


# --- TaskError: one failed attempt.

error = TaskError.from_exception(ValueError("boom"))
assert_type(error, TaskError)
assert_type(error.exception_class_path, str)
assert_type(error.traceback, str)
assert_type(error.exception_class, type[BaseException])
assert_type(result.errors[-1].exception_class, type[BaseException])
TaskError(exception_class_path="builtins.ValueError")  # type: ignore[call-arg]
TaskError.from_exception("boom")  # type: ignore[arg-type]
error.traceback = ""  # type: ignore[misc]

"""Type-level checks for `@task` and `Task`: mypy and pyright check this file; nothing runs it.

`assert_type` lines state what must hold; `# type: ignore[code]` lines state what both
checkers must reject (unused ignores are errors in both, so a regression either way fails).
`Task[[int, int], int]` cannot be spelled in `assert_type` (a ParamSpec keeps parameter
names and kinds), so a task's type is checked by assigning it to an annotated variable and
by the types of its methods.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, assert_type

from django_tasks import Task, TaskArguments, TaskResult, task
from django_tasks.backends.base import BaseTaskBackend


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def fetch(url: str) -> int:
    return len(url)


@task()
def ping() -> None:
    return None


@task(priority=5, queue_name="emails", backend="default", enqueue_on_commit=True)
def send(to: str, subject: str = "Hello") -> bool:
    return bool(to and subject)


@task(priority=-5, takes_context=False)
async def notify(user_id: int) -> str:
    return str(user_id)


@task
def kinds(pos: int, /, both: str, *, flag: bool, retries: int = 3) -> str:
    return f"{pos} {both} {flag} {retries}"


@task
def total(*values: int, **labels: str) -> int:
    return sum(values) + len(labels)


@task
def loose(payload: Any) -> Any:
    return payload


# --- The decorator keeps the signature and unwraps the coroutine of an async function.

add_task: Task[[int, int], int] = add
fetch_task: Task[[str], int] = fetch
ping_task: Task[[], None] = ping
send_task: Task[[str, str], bool] = send
notify_task: Task[[int], str] = notify
kinds_task: Task[..., str] = kinds
total_task: Task[..., int] = total
loose_task: Task[[Any], Any] = loose

wrong_return: Task[[int, int], str] = add  # type: ignore[assignment]
not_the_params: Task[[str, str], int] = add  # type: ignore[assignment]


def decorated_by_call(a: int) -> float:
    return a / 2


async def decorated_async_by_call(a: int) -> float:
    return a / 2


assert_type(task(decorated_by_call).enqueue(1), TaskResult[float])
assert_type(task()(decorated_by_call).enqueue(1), TaskResult[float])
assert_type(task(decorated_async_by_call).enqueue(1), TaskResult[float])
assert_type(task(priority=1)(decorated_async_by_call).enqueue(1), TaskResult[float])

# Options are checked by type; the function must be given positionally.
task(priority="high")(decorated_by_call)  # type: ignore[call-overload]
task(queue_name=None)(decorated_by_call)  # type: ignore[call-overload]
task(unknown_option=True)(decorated_by_call)  # type: ignore[call-overload]
task(function=decorated_by_call)  # type: ignore[call-overload]
task(1)  # type: ignore[call-overload]


# --- enqueue / aenqueue: arguments checked against the signature.

assert_type(add.enqueue(1, 2), TaskResult[int])
assert_type(add.enqueue(1, b=2), TaskResult[int])
assert_type(add.enqueue(a=1, b=2), TaskResult[int])
assert_type(fetch.enqueue("https://example.com"), TaskResult[int])
assert_type(ping.enqueue(), TaskResult[None])
assert_type(notify.enqueue(user_id=3), TaskResult[str])
assert_type(loose.enqueue({"any": ["json"]}), TaskResult[Any])

add.enqueue("1", 2)  # type: ignore[arg-type]
add.enqueue(1, b="2")  # type: ignore[arg-type]
add.enqueue(1.5, 2)  # type: ignore[arg-type]
add.enqueue(1)  # type: ignore[call-arg]
add.enqueue()  # type: ignore[call-arg]
add.enqueue(1, 2, 3)  # type: ignore[call-arg]
add.enqueue(1, 2, c=3)  # type: ignore[call-arg]
add.enqueue(1, a=1)  # type: ignore[call-arg, misc]
ping.enqueue(None)  # type: ignore[call-arg]
fetch.enqueue(url=b"bytes")  # type: ignore[arg-type]

# Defaults may be left out or given, by position or by keyword.
assert_type(send.enqueue("a@example.com"), TaskResult[bool])
assert_type(send.enqueue("a@example.com", "Hi"), TaskResult[bool])
assert_type(send.enqueue(to="a@example.com", subject="Hi"), TaskResult[bool])
send.enqueue(subject="Hi")  # type: ignore[call-arg]
send.enqueue("a@example.com", subject=1)  # type: ignore[arg-type]

# Positional-only and keyword-only parameters keep their kind.
assert_type(kinds.enqueue(1, "x", flag=True), TaskResult[str])
assert_type(kinds.enqueue(1, both="x", flag=True, retries=2), TaskResult[str])
kinds.enqueue(pos=1, both="x", flag=True)  # type: ignore[call-arg]
kinds.enqueue(1, "x", True)  # type: ignore[call-arg]
kinds.enqueue(1, "x")  # type: ignore[call-arg]
kinds.enqueue(1, "x", flag="yes")  # type: ignore[arg-type]
kinds.enqueue(1, "x", flag=True, retries=None)  # type: ignore[arg-type]

# *args and **kwargs take any number of arguments of their declared types.
assert_type(total.enqueue(), TaskResult[int])
assert_type(total.enqueue(1, 2, 3, unit="kg", note="x"), TaskResult[int])
total.enqueue(1, "2")  # type: ignore[arg-type]
total.enqueue(1, unit=2)  # type: ignore[arg-type]


async def enqueue_from_async_code() -> None:
    assert_type(await add.aenqueue(1, 2), TaskResult[int])
    assert_type(await fetch.aenqueue("x"), TaskResult[int])
    assert_type(await kinds.aenqueue(1, "x", flag=False), TaskResult[str])
    await add.aenqueue("1", 2)  # type: ignore[arg-type]
    await add.aenqueue(1)  # type: ignore[call-arg]
    await add.aenqueue(1, 2, c=3)  # type: ignore[call-arg]


# --- using() returns a task of the same type, with options checked by type.

assert_type(add.using(priority=1).enqueue(1, 2), TaskResult[int])
assert_type(fetch.using(queue_name="slow").enqueue("x"), TaskResult[int])
assert_type(send.using(backend="other").enqueue("a@example.com"), TaskResult[bool])
assert_type(add.using(run_after=timedelta(minutes=5)).enqueue(1, 2), TaskResult[int])
assert_type(add.using(run_after=datetime(2026, 1, 1, tzinfo=UTC)).enqueue(1, 2), TaskResult[int])
assert_type(kinds.using().enqueue(1, "x", flag=True), TaskResult[str])
using_keeps_type: Task[[int, int], int] = add.using(priority=1, queue_name="default")
add.using(priority=1).enqueue("1", 2)  # type: ignore[arg-type]
add.using(priority=1).enqueue(1)  # type: ignore[call-arg]
add.using(priority="high")  # type: ignore[arg-type]
add.using(run_after=300)  # type: ignore[arg-type]
add.using(takes_context=True)  # type: ignore[call-arg]
add.using(1)  # type: ignore[call-arg]


# --- call / acall: run the function now; the result is the awaited return type.

assert_type(add.call(1, 2), int)
assert_type(fetch.call("x"), int)
assert_type(kinds.call(1, "x", flag=True), str)
assert_type(total.call(1, 2, unit="kg"), int)
add.call("1", 2)  # type: ignore[arg-type]
add.call(1)  # type: ignore[call-arg]
kinds.call(pos=1, both="x", flag=True)  # type: ignore[call-arg]


async def call_from_async_code() -> None:
    assert_type(await add.acall(1, 2), int)
    assert_type(await fetch.acall("x"), int)
    assert_type(await notify.acall(user_id=1), str)
    await fetch.acall(1)  # type: ignore[arg-type]
    await add.acall(1, 2, 3)  # type: ignore[call-arg]


# --- The task's own attributes.

assert_type(add.name, str)
assert_type(add.module_path, str)
assert_type(add.priority, int)
assert_type(add.backend, str)
assert_type(add.queue_name, str)
assert_type(add.run_after, datetime | timedelta | None)
assert_type(add.takes_context, bool)
assert_type(add.enqueue_on_commit, bool | None)
assert_type(add.get_backend(), BaseTaskBackend)

# Tasks are frozen: change options with using().
add.priority = 3  # type: ignore[misc]
add.queue_name = "other"  # type: ignore[misc]


# --- enqueue_many: each call's arguments are checked against the parameters.

add_arguments: TaskArguments[[int, int]] = add.arguments(1, 2)
assert_type(add.enqueue_many([add.arguments(1, 2), add.arguments(3, b=4)]), list[TaskResult[int]])
assert_type(fetch.enqueue_many(fetch.arguments(u) for u in ["a", "b"]), list[TaskResult[int]])
add.arguments("1", 2)  # type: ignore[arg-type]
add.arguments(1)  # type: ignore[call-arg]
wrong_calls = [fetch.arguments("x")]
add.enqueue_many(wrong_calls)  # type: ignore[arg-type]


async def enqueue_many_from_async_code() -> None:
    assert_type(await add.aenqueue_many([add.arguments(1, 2)]), list[TaskResult[int]])

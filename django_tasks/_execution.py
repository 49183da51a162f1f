"""Run one attempt of a task from its stored payload: the path every backend shares.

Decode the JSON arguments into their declared types, call the function, validate the
return value against its annotation and encode it, then decode it again, so what the
caller reads back is exactly what a worker in another process would have stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import async_to_sync
from django.utils import timezone

from django_tasks import _serialization, exceptions, results, retries, signals

if TYPE_CHECKING:
    from django_tasks._signatures import TaskSignature
    from django_tasks.backends.base import BaseTaskBackend

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: the final result and, on success, the stored return JSON."""

    result: results.TaskResult[Any]
    return_data: bytes | str | None
    retry_at: datetime | None = None
    """When a failed attempt is to be tried again; None when the result is final."""


def _call(signature: TaskSignature, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if signature.is_async:
        return async_to_sync(signature.func)(*args, **kwargs)
    return signature.func(*args, **kwargs)


def start(
    backend: BaseTaskBackend, result: results.TaskResult[T], worker_id: str
) -> results.TaskResult[T]:
    """Mark `result` as running for `worker_id` and send `task_started`."""
    now = timezone.now()
    running = result.evolve(
        status=results.TaskResultStatus.RUNNING,
        started_at=result.started_at or now,
        last_attempted_at=now,
        worker_ids=[*result.worker_ids, worker_id],
    )
    signals.send_started(type(backend), running)
    return running


def fail(backend: BaseTaskBackend, result: results.TaskResult[T], error: BaseException) -> Outcome:
    """Finish `result` as FAILED with `error` appended, and send `task_finished`."""
    failed = result.evolve(
        status=results.TaskResultStatus.FAILED,
        finished_at=timezone.now(),
        errors=[*result.errors, results.TaskError.from_exception(error)],
    )
    signals.send_finished(type(backend), failed)
    return Outcome(failed, None)


def retry(
    backend: BaseTaskBackend, result: results.TaskResult[T], error: BaseException, wait: timedelta
) -> Outcome:
    """Put `result` back to READY with `error` appended, due after `wait`; send `task_retried`."""
    retry_at = timezone.now() + wait
    waiting = result.evolve(
        status=results.TaskResultStatus.READY,
        errors=[*result.errors, results.TaskError.from_exception(error)],
    )
    signals.send_retried(type(backend), waiting, retry_at)
    return Outcome(waiting, None, retry_at)


def execute(
    backend: BaseTaskBackend,
    running: results.TaskResult[Any],
    data: bytes | str,
    *,
    propagate: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
    on_return: Callable[[], None] | None = None,
) -> Outcome:
    """Run a started attempt from its stored arguments and return how it ended.

    Any exception from decoding, from the task or from its return value fails the
    result, `SystemExit` and `MemoryError` included. Those in `propagate` are not
    recorded and propagate: by default `KeyboardInterrupt`, so Ctrl-C stops a process
    running tasks in line, as in `django.tasks`. `on_return` is called as soon as the
    task function returns or raises.
    """
    task = running.task
    signature = task.signature
    serializer = backend.serializer
    # The decoded arguments join the result once, with the outcome; a task that takes
    # its context sees them in it, so there they join before the call.
    decoded: dict[str, Any] = {}
    try:
        args, kwargs = _serialization.loads_call(signature, data, serializer)
        decoded = {"args": args, "kwargs": kwargs}
        if task.takes_context:
            running, decoded = running.evolve(**decoded), {}
            args = [results.TaskContext(task_result=running), *args]
        try:
            value = _call(signature, args, kwargs)
        finally:
            if on_return is not None:
                on_return()
        return_data = _serialization.dumps_result(signature, value, serializer)
        returned = _serialization.loads_result(signature, return_data, serializer)
    except propagate:
        raise
    except BaseException as error:
        if decoded:
            running = running.evolve(**decoded)
        policy = task.retry
        if policy is None and isinstance(error, exceptions.Retry):
            policy = retries.DEFAULT_POLICY
        if policy is not None and policy.retries(error, running.attempts):
            return retry(backend, running, error, policy.wait(running.attempts, error))
        return fail(backend, running, error)
    succeeded = running.evolve(
        status=results.TaskResultStatus.SUCCESSFUL,
        finished_at=timezone.now(),
        _return_value=returned,
        **decoded,
    )
    signals.send_finished(type(backend), succeeded)
    return Outcome(succeeded, return_data)

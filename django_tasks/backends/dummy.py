"""Keep enqueued tasks in memory without running them, for tests."""

from __future__ import annotations

from typing import Any, TypeVar

from django.utils import timezone

from django_tasks import _execution, exceptions, results, signals
from django_tasks.backends.base import BaseTaskBackend

T = TypeVar("T")


class DummyBackend(BaseTaskBackend):
    """Store enqueued tasks in `results` and run them only when a test asks.

    `run_ready()` runs what is due, through the same decode/validate path as a worker,
    and `clear()` forgets everything. Results live on the backend instance, which is
    per thread, so `supports_get_result` is False as in `django.tasks`.
    """

    supports_defer = True
    supports_async_task = True
    supports_priority = True
    supports_get_result = False
    worker_id = "dummy"

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.results: list[results.TaskResult[Any]] = []
        self._payloads: dict[str, bytes | str] = {}

    def enqueue_prepared(
        self, result: results.TaskResult[T], data: bytes | str
    ) -> results.TaskResult[T]:
        """Store the call and return its READY result."""
        enqueued = self.stamp(result)
        self.results.append(enqueued)
        self._payloads[enqueued.id] = data
        signals.send_enqueued(type(self), enqueued)
        return enqueued

    def get_result(self, result_id: str) -> results.TaskResult[Any]:
        """Return the stored result with `result_id`, or raise `TaskResultDoesNotExist`."""
        for result in self.results:
            if result.id == result_id:
                return result
        raise exceptions.TaskResultDoesNotExist(
            f"No task result {result_id} in backend '{self.alias}'."
        )

    def clear(self) -> None:
        """Forget every stored result."""
        self.results.clear()
        self._payloads.clear()

    def run_ready(self, *, include_deferred: bool = False) -> list[results.TaskResult[Any]]:
        """Run every READY result that is due, highest priority first, and return them.

        With `include_deferred`, results whose `run_after` is still in the future run too.
        """
        now = timezone.now()
        due = [
            result
            for result in self.results
            if result.status == results.TaskResultStatus.READY
            and (include_deferred or not _deferred(result, now))
        ]
        due.sort(key=lambda result: -result.task.priority)
        return [self._run(result) for result in due]

    def _run(self, result: results.TaskResult[Any]) -> results.TaskResult[Any]:
        data = self._payloads[result.id]
        outcome = _execution.execute(self, _execution.start(self, result, self.worker_id), data)
        while outcome.retry_at is not None:  # retried in line, without waiting
            outcome = _execution.execute(
                self, _execution.start(self, outcome.result, self.worker_id), data
            )
        finished = outcome.result
        self.results[self.results.index(result)] = finished
        return finished


def _deferred(result: results.TaskResult[Any], now: Any) -> bool:
    run_after = result.task.run_after
    return run_after is not None and run_after > now

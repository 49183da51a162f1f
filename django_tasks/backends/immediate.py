"""Run each task at once, in the thread that enqueues it."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any, ClassVar, TypeVar

from django_tasks import _execution, exceptions, results, signals
from django_tasks.backends.base import BaseTaskBackend

T = TypeVar("T")


class ImmediateBackend(BaseTaskBackend):
    """Run each task when it is enqueued, through the same path a worker uses.

    The arguments are encoded to JSON and decoded back into their declared types before
    the call, and the return value is validated, encoded and decoded again, so a task
    that passes its tests here really round-trips through a database worker.

    The most recent `max_results` results are kept in memory, per thread, so
    `get_result` and `refresh` work for tasks enqueued with `enqueue_on_commit`.
    """

    supports_async_task = True
    supports_priority = True
    supports_get_result = False
    max_results: ClassVar[int] = 1000

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.worker_id = f"immediate-{uuid.uuid4().hex[:12]}"
        self._results: OrderedDict[str, results.TaskResult[Any]] = OrderedDict()

    def enqueue_prepared(
        self, result: results.TaskResult[T], data: bytes | str
    ) -> results.TaskResult[T]:
        """Run the call now and return its finished result."""
        enqueued = self.stamp(result)
        signals.send_enqueued(type(self), enqueued)
        outcome = _execution.execute(self, _execution.start(self, enqueued, self.worker_id), data)
        while outcome.retry_at is not None:  # retried in line, without waiting
            outcome = _execution.execute(
                self, _execution.start(self, outcome.result, self.worker_id), data
            )
        finished: results.TaskResult[T] = outcome.result
        self._results[finished.id] = finished
        while len(self._results) > self.max_results:
            self._results.popitem(last=False)
        return finished

    def get_result(self, result_id: str) -> results.TaskResult[Any]:
        """Return a recent result run in this thread, or raise `TaskResultDoesNotExist`."""
        try:
            return self._results[result_id]
        except KeyError:
            raise exceptions.TaskResultDoesNotExist(
                f"No task result {result_id} among the last {self.max_results} run by "
                f"backend '{self.alias}' in this thread."
            ) from None

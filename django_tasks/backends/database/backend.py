"""The database backend: enqueue is one INSERT; `db_worker` processes run the rows."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.core import checks
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.utils import timezone
from pydantic import Field

from django_tasks import _serialization, exceptions, results, signals
from django_tasks.backends.base import BackendOptions, BaseTaskBackend
from django_tasks.backends.database import inserts, overlap
from django_tasks.retries import RetryPolicy
from django_tasks.tasks import Task, find_task

if TYPE_CHECKING:
    from datetime import datetime

    from django_tasks.backends.database.models import DBTaskResult

T = TypeVar("T")
logger = logging.getLogger("django_tasks")


class DatabaseOptions(BackendOptions):
    """`OPTIONS` of the database backend, shared by every worker that serves it.

    - `DATABASE`: the database alias holding the table (default: the router's choice).
    - `LEASE_SECONDS`: how long a claim lasts without renewal (above 0, at most a day);
      workers renew it every third of that while the task runs, and other workers take
      back expired claims.
    - `MAX_LOST_ATTEMPTS`: after this many attempts lost with their worker, the task is
      marked FAILED instead of run again, so a task that kills its worker cannot loop.
    - `BULK_HELPER_THREAD`: on SQLite, whether a bulk enqueue of more than 1,000 calls
      is validated on a helper thread while it is stored (see `overlap`): faster, for
      a longer hold of SQLite's write lock. False keeps every bulk enqueue on the
      caller's thread, validated whole before any row is written.
    """

    database: str | None = Field(default=None, alias="DATABASE")
    lease_seconds: float = Field(
        default=60.0, gt=0, le=86_400, allow_inf_nan=False, alias="LEASE_SECONDS"
    )
    max_lost_attempts: int = Field(default=3, ge=1, alias="MAX_LOST_ATTEMPTS")
    bulk_helper_thread: bool = Field(default=True, alias="BULK_HELPER_THREAD")


class DatabaseBackend(BaseTaskBackend):
    """Store tasks in the `django_tasks_database` table, for `db_worker` processes to run."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True
    options_class = DatabaseOptions
    options: DatabaseOptions

    @property
    def model(self) -> type[DBTaskResult]:
        """Return the model of the result table."""
        from django_tasks.backends.database.models import DBTaskResult

        return DBTaskResult

    def db_alias(self) -> str:
        """Return the alias of the database that holds this backend's table."""
        return self.options.database or router.db_for_write(self.model)

    def transaction_alias(self) -> str | None:
        """Return the database whose commit `enqueue_on_commit` waits for."""
        return self.db_alias()

    def enqueue_prepared(
        self, result: results.TaskResult[T], data: bytes | str
    ) -> results.TaskResult[T]:
        """Insert the call as a READY row and return its result."""
        return self.enqueue_prepared_many([(result, data)])[0]

    def enqueue_prepared_many(
        self, prepared: Sequence[tuple[results.TaskResult[T], bytes | str]]
    ) -> list[results.TaskResult[T]]:
        """Insert the calls as READY rows, in one transaction (see `inserts`)."""
        if any(result.enqueued_at is None for result, _ in prepared):  # enqueued on commit
            now, stamp = timezone.now(), self.stamp
            prepared = [(stamp(result, now), data) for result, data in prepared]
        inserts.insert_ready(self.db_alias(), self.alias, prepared)
        return self._stored_many([result for result, _ in prepared])

    def _store_while_preparing(
        self, task: Task[Any, T], calls: list[Any], now: datetime
    ) -> list[results.TaskResult[T]] | None:
        """Store a large bulk enqueue while it is validated, where that helps (see `overlap`)."""
        return overlap.store(self, task, calls, now)

    def _stored_many(self, stored: list[results.TaskResult[T]]) -> list[results.TaskResult[T]]:
        """Send `task_enqueued` for each stored call, and return the results."""
        signals.send_enqueued_many(type(self), stored)
        return stored

    def requeue(self, row: DBTaskResult) -> DBTaskResult:
        """Insert a new READY row that calls the task of `row` again, and return it.

        The new row has a new id and the same task, queue, priority and stored
        arguments, and is due now; `row` itself is left as it is. `task_enqueued` is
        sent when the task path still names a task that can be enqueued here.
        """
        if row.backend_name != self.alias:
            raise exceptions.InvalidTaskBackend(
                f"Task result {row.id} belongs to backend '{row.backend_name}', not "
                f"'{self.alias}'; requeue it with task_backends['{row.backend_name}']."
            )
        now = timezone.now()
        new_row = self.model.objects.using(self.db_alias()).create(
            id=uuid.UUID(self.new_result_id()),
            task_path=row.task_path,
            backend_name=row.backend_name,
            queue_name=row.queue_name,
            priority=row.priority,
            run_after=None,
            ready_at=now,
            enqueued_at=now,
            args_kwargs=row.args_kwargs,
            retry=row.retry,
        )
        logger.info("task_requeued id=%s task=%s from=%s", new_row.id, row.task_path, row.id)
        try:
            requeued = self.result_from_row(new_row, find_task(new_row.task_path))
        except exceptions.InvalidTask as error:
            # The row stays: the worker that claims it records why it cannot run.
            logger.warning("task_requeued_unsignalled id=%s error=%s", new_row.id, error)
            return new_row
        signals.task_enqueued.send(type(self), task_result=requeued)
        return new_row

    def get_result(self, result_id: str) -> results.TaskResult[Any]:
        """Return the result stored under `result_id`, decoded into its declared types.

        Only this backend's results: backends that share the table (two aliases of the
        database backend) do not see each other's.
        """
        try:
            row = self.model.objects.using(self.db_alias()).get(
                id=result_id, backend_name=self.alias
            )
        except (self.model.DoesNotExist, ValidationError, ValueError):
            raise exceptions.TaskResultDoesNotExist(
                f"No task result {result_id} in backend '{self.alias}'."
            ) from None
        return self.result_from_row(row, find_task(row.task_path))

    def task_for_row(self, row: DBTaskResult, task: Task[Any, Any]) -> Task[Any, Any]:
        """Return `task` with the options the row was enqueued with."""
        retry = task.retry if row.retry is None else RetryPolicy.from_json(row.retry)
        if (task.priority, task.queue_name, task.run_after, task.backend, task.retry) == (
            row.priority,
            row.queue_name,
            row.run_after,
            row.backend_name,
            retry,
        ):
            return task
        return dataclasses.replace(
            task,
            priority=row.priority,
            queue_name=row.queue_name,
            run_after=row.run_after,
            backend=row.backend_name,
            retry=retry,
        )

    def result_from_row(
        self,
        row: DBTaskResult,
        task: Task[Any, T],
        *,
        decode: bool = True,
        started_at: datetime | None = None,
        last_attempted_at: datetime | None = None,
        **changes: Any,
    ) -> results.TaskResult[T]:
        """Build the result of a row, with arguments and return value in their declared types.

        If the stored arguments no longer fit the task's signature, `args` and `kwargs`
        hold their JSON form instead, so the row can still be inspected. With
        `decode=False` they are left empty, for a worker that decodes them as it runs.
        `started_at` and `last_attempted_at`, when given, replace the row's: a worker's
        times for the attempt it starts. Other `changes` override fields read from the
        row (by a copy: slower).
        """
        task = self.task_for_row(row, task)
        args, kwargs = self._arguments(row, task) if decode else ([], {})
        returned = None
        if row.status == results.TaskResultStatus.SUCCESSFUL:
            returned = _serialization.loads_result(
                task.signature, row.return_value, self.serializer
            )
        result = results.new_result(
            task,
            str(row.id),
            results.TaskResultStatus(row.status),
            row.enqueued_at,
            started_at or row.started_at,
            row.finished_at,
            last_attempted_at or row.last_attempted_at,
            args,
            kwargs,
            row.backend_name,
            [results.TaskError(**error) for error in row.errors],
            row.all_worker_ids(),
            returned,
        )
        return result.evolve(**changes) if changes else result

    def _arguments(
        self, row: DBTaskResult, task: Task[Any, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        try:
            return _serialization.loads_call(task.signature, row.args_kwargs, self.serializer)
        except exceptions.InvalidTask:
            try:
                raw = _serialization.loads_json(row.args_kwargs, self.serializer)
                return list(raw["args"]), dict(raw["kwargs"])
            except (TypeError, ValueError, KeyError):
                return [], {}

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        """Check that the app is installed and the database can claim tasks safely."""
        if not apps.is_installed("django_tasks.backends.database"):
            yield checks.Error(
                f"Task backend '{self.alias}' needs the app of the database backend.",
                hint="Add 'django_tasks.backends.database' to INSTALLED_APPS.",
                obj=f"TASKS['{self.alias}']",
                id="django_tasks.E003",
            )
            return
        alias = self.db_alias()
        if alias not in connections:
            yield checks.Error(
                f"Task backend '{self.alias}' uses database '{alias}', which is not in DATABASES.",
                hint="Set OPTIONS['DATABASE'] to an alias from DATABASES.",
                obj=f"TASKS['{self.alias}']",
                id="django_tasks.E004",
            )

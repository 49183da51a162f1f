"""The table of task results that the database backend stores and its workers claim."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.db import models

from django_tasks.results import TaskResultStatus


class DBTaskResult(models.Model):
    """One enqueued call of a task, its state, and its outcome.

    `args_kwargs` and `return_value` hold JSON text written by the backend's serializer.
    A RUNNING row belongs to `worker_id` until `lease_expires_at`; the worker renews the
    lease while the task runs, and any worker may take the row back once it has expired.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(
        max_length=10, choices=TaskResultStatus.choices, default=TaskResultStatus.READY
    )
    task_path = models.CharField(max_length=255)
    backend_name = models.CharField(max_length=100)
    queue_name = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0)
    run_after = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(
        help_text="When the task may next be claimed: run_after, or the enqueue time."
    )
    enqueued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    args_kwargs = models.TextField()
    # NULL until the task succeeds; the JSON text "null" is a task that returned None.
    return_value = models.TextField(null=True, blank=True)  # noqa: DJ001
    retry = models.JSONField(
        null=True, blank=True, help_text="A retry policy given with using(); null: the task's."
    )
    errors = models.JSONField(default=list, blank=True)
    worker_ids = models.JSONField(default=list, blank=True)
    worker_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "task result"
        verbose_name_plural = "task results"
        ordering = ["-enqueued_at"]
        # Migration 0004 makes the lease, worker and finished indexes partial (`IS NOT
        # NULL` on their column) where the database supports it; the state here stays
        # plain, which is what MySQL and MariaDB keep.
        indexes = [
            # The claim: READY rows, highest priority first, then FIFO.
            models.Index(fields=["status", "-priority", "ready_at"], name="django_tasks_claim_idx"),
            # Finding expired leases, and renewing a worker's own.
            models.Index(fields=["status", "lease_expires_at"], name="django_tasks_lease_idx"),
            models.Index(fields=["worker_id"], name="django_tasks_worker_idx"),
            # Pruning and the admin's newest-first list.
            models.Index(fields=["status", "finished_at"], name="django_tasks_finished_idx"),
            models.Index(fields=["enqueued_at"], name="django_tasks_enqueued_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_path} {self.id} ({self.status})"

    @property
    def attempts(self) -> int:
        """Return the attempts made, counting one still running."""
        return len(self.all_worker_ids())

    def all_worker_ids(self) -> list[str]:
        """Return the workers of finished attempts and the one running now, if any."""
        running = self.status == TaskResultStatus.RUNNING and self.worker_id
        current = [self.worker_id] if running else []
        return [*self.worker_ids, *current]

    def error_list(self) -> list[dict[str, Any]]:
        """Return the stored errors, oldest first."""
        return list(self.errors)


@functools.cache
def fields_by_name() -> dict[str, models.Field[Any, Any]]:
    """Return the table's concrete fields by name, for the statements written by hand."""
    return {field.name: field for field in DBTaskResult._meta.concrete_fields}

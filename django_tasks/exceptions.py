"""Exceptions raised by django_tasks; all share the root `TaskException`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist


class TaskException(Exception):
    """Something went wrong with a task."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class InvalidTask(TaskException):
    """The task or its arguments are invalid."""

    def __init__(
        self,
        message: str | None = None,
        *,
        task_path: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.task_path = task_path
        self.errors: list[dict[str, Any]] = [dict(error) for error in errors]


class Retry(TaskException):
    """Raise in a task to have it tried again, after `delay` or its policy's wait."""

    def __init__(self, message: str | None = None, *, delay: timedelta | None = None) -> None:
        super().__init__(message or "The task asked to be tried again.")
        self.delay = delay


class WorkerLost(TaskException):
    """The worker running the task stopped before finishing it."""


class InvalidTaskBackend(TaskException, ImproperlyConfigured):
    """The task backend is not configured correctly."""


class TaskResultDoesNotExist(TaskException, ObjectDoesNotExist):
    """The requested task result does not exist."""


class TaskResultMismatch(TaskResultDoesNotExist):
    """The requested task result belongs to another task."""


InvalidTaskError = InvalidTask
InvalidTaskBackendError = InvalidTaskBackend
ResultDoesNotExist = TaskResultDoesNotExist

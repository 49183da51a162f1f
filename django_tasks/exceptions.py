"""Exceptions raised by django_tasks; all share the root `TaskException`.

On Django 6.0 and later each class also derives from its namesake in
`django.tasks.exceptions`, so `except django.tasks.exceptions.InvalidTask` catches ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist

if TYPE_CHECKING:
    # Type checkers see the bases every supported Django has.
    _DjangoTaskException = Exception
    _DjangoInvalidTask = Exception
    _DjangoInvalidTaskBackend = ImproperlyConfigured
    _DjangoTaskResultDoesNotExist = Exception
    _DjangoTaskResultMismatch = Exception
else:
    try:
        from django.tasks import exceptions as _django
    except ImportError:  # Django 5.2 has no django.tasks
        _DjangoTaskException = _DjangoInvalidTask = Exception
        _DjangoTaskResultDoesNotExist = _DjangoTaskResultMismatch = Exception
        _DjangoInvalidTaskBackend = ImproperlyConfigured
    else:
        _DjangoTaskException = _django.TaskException
        _DjangoInvalidTask = _django.InvalidTask
        _DjangoInvalidTaskBackend = _django.InvalidTaskBackend
        _DjangoTaskResultDoesNotExist = _django.TaskResultDoesNotExist
        _DjangoTaskResultMismatch = _django.TaskResultMismatch


class TaskException(_DjangoTaskException):
    """Something went wrong with a task."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class InvalidTask(TaskException, _DjangoInvalidTask):
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


class InvalidTaskBackend(TaskException, _DjangoInvalidTaskBackend):
    """The task backend is not configured correctly."""


class TaskResultDoesNotExist(TaskException, ObjectDoesNotExist, _DjangoTaskResultDoesNotExist):
    """The requested task result does not exist."""


class TaskResultMismatch(TaskResultDoesNotExist, _DjangoTaskResultMismatch):
    """The requested task result belongs to another task."""


InvalidTaskError = InvalidTask
InvalidTaskBackendError = InvalidTaskBackend
ResultDoesNotExist = TaskResultDoesNotExist

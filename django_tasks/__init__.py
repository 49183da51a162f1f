"""Typed background tasks for Django: the `django.tasks` API, validated by pydantic."""

from django.utils.connection import ConnectionProxy as _ConnectionProxy

from django_tasks import signals
from django_tasks._handler import TaskBackendHandler as _TaskBackendHandler
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.exceptions import (
    InvalidTask,
    InvalidTaskBackend,
    InvalidTaskBackendError,
    InvalidTaskError,
    ResultDoesNotExist,
    Retry,
    TaskException,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django_tasks.results import (
    ResultStatus,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from django_tasks.retries import RetryPolicy
from django_tasks.signals import task_enqueued, task_finished, task_retried, task_started
from django_tasks.tasks import (
    DEFAULT_QUEUE_NAME,
    DEFAULT_TASK_BACKEND_ALIAS,
    DEFAULT_TASK_PRIORITY,
    DEFAULT_TASK_QUEUE_NAME,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    Task,
    TaskArguments,
    task,
)

__all__ = [
    "BaseTaskBackend",
    "DEFAULT_QUEUE_NAME",
    "DEFAULT_TASK_BACKEND_ALIAS",
    "DEFAULT_TASK_PRIORITY",
    "DEFAULT_TASK_QUEUE_NAME",
    "InvalidTask",
    "InvalidTaskBackend",
    "InvalidTaskBackendError",
    "InvalidTaskError",
    "ResultDoesNotExist",
    "ResultStatus",
    "Retry",
    "RetryPolicy",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "Task",
    "TaskArguments",
    "TaskContext",
    "TaskError",
    "TaskException",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "default_task_backend",
    "signals",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_retried",
    "task_started",
    "tasks",
]

task_backends = _TaskBackendHandler()
"""The backends of the `TASKS` setting, by alias."""

default_task_backend: BaseTaskBackend = _ConnectionProxy(task_backends, DEFAULT_TASK_BACKEND_ALIAS)  # type: ignore[assignment]
"""The backend under the `default` alias."""

tasks = task_backends
"""The name the original django-tasks backport used for `task_backends`."""

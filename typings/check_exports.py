"""Type-level checks for the names exported by `django_tasks`.

Django 6.1's names and the backport's aliases must be the same objects, with sensible
types. mypy and pyright check this file; nothing runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_type

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist
from django.dispatch import Signal

import django_tasks
from django_tasks import (
    DEFAULT_QUEUE_NAME,
    DEFAULT_TASK_BACKEND_ALIAS,
    DEFAULT_TASK_PRIORITY,
    DEFAULT_TASK_QUEUE_NAME,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    BaseTaskBackend,
    InvalidTask,
    InvalidTaskBackend,
    InvalidTaskBackendError,
    InvalidTaskError,
    ResultDoesNotExist,
    ResultStatus,
    Task,
    TaskException,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
    signals,
    task,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
    tasks,
)
from django_tasks._handler import TaskBackendHandler
from django_tasks.backends.base import BackendOptions
from django_tasks.serializers import Serializer


@task
def add(a: int, b: int) -> int:
    return a + b


# --- Aliases are the same classes as Django 6.1's names.

assert_type(InvalidTaskError, type[InvalidTask])
assert_type(InvalidTaskBackendError, type[InvalidTaskBackend])
assert_type(ResultDoesNotExist, type[TaskResultDoesNotExist])
assert_type(ResultStatus, type[TaskResultStatus])
invalid: InvalidTask = InvalidTaskError("bad arguments")
invalid_alias: InvalidTaskError = InvalidTask("bad arguments")
status: ResultStatus = TaskResultStatus.READY

# One root for every exception, and Django's own bases where Django has one.
as_root: TaskException = InvalidTaskError()
improperly_configured: ImproperlyConfigured = InvalidTaskBackendError()
does_not_exist: ObjectDoesNotExist = ResultDoesNotExist()
mismatch: ResultDoesNotExist = TaskResultMismatch()
not_improperly_configured: ImproperlyConfigured = InvalidTaskError()  # type: ignore[assignment]
not_a_mismatch: TaskResultMismatch = ResultDoesNotExist()  # type: ignore[assignment]

# InvalidTask carries the task path and pydantic's errors.
detailed = InvalidTask("bad", task_path="shop.tasks.add", errors=[{"loc": ("a",), "msg": "x"}])
assert_type(detailed.task_path, str | None)
assert_type(detailed.errors, list[dict[str, Any]])
InvalidTask("bad", "shop.tasks.add")  # type: ignore[call-arg]
InvalidTask(task_path=1)  # type: ignore[arg-type]


def handle_errors() -> None:
    try:
        add.enqueue(1, 2)
    except InvalidTaskError as error:
        assert_type(error, InvalidTask)
        assert_type(error.errors, list[dict[str, Any]])
    except ResultDoesNotExist as error:
        assert_type(error, TaskResultDoesNotExist)


# --- Backends.

assert_type(task_backends, TaskBackendHandler)
assert_type(tasks, TaskBackendHandler)
assert_type(task_backends["default"], BaseTaskBackend)
assert_type(tasks["default"], BaseTaskBackend)
assert_type(task_backends.all(), Sequence[BaseTaskBackend])
assert_type(default_task_backend, BaseTaskBackend)
assert_type(default_task_backend.alias, str)
assert_type(default_task_backend.queues, frozenset[str])
assert_type(default_task_backend.enqueue_on_commit, bool)
assert_type(default_task_backend.serializer, Serializer)
assert_type(default_task_backend.supports_defer, bool)
assert_type(default_task_backend.supports_async_task, bool)
assert_type(default_task_backend.supports_get_result, bool)
assert_type(default_task_backend.supports_priority, bool)
assert_type(default_task_backend.task_class, type[Task[Any, Any]])
assert_type(BaseTaskBackend.options_class, type[BackendOptions])
assert_type(default_task_backend.get_result("id"), TaskResult[Any])
assert_type(default_task_backend.enqueue(add, [1, 2], {}), TaskResult[int])
backend_by_index = task_backends[0]  # type: ignore[index]
default_task_backend.enqueue(add, 1, 2)  # type: ignore[arg-type]


# --- Constants.

alias: str = DEFAULT_TASK_BACKEND_ALIAS
queue_name: str = DEFAULT_TASK_QUEUE_NAME
backport_queue_name: str = DEFAULT_QUEUE_NAME
priorities: tuple[int, int, int] = (TASK_MIN_PRIORITY, DEFAULT_TASK_PRIORITY, TASK_MAX_PRIORITY)
priority_as_str: str = DEFAULT_TASK_PRIORITY  # type: ignore[assignment]


# --- Signals.

assert_type(task_enqueued, Signal)
assert_type(task_started, Signal)
assert_type(task_finished, Signal)
assert_type(signals.task_enqueued, Signal)


# --- What is not exported cannot be imported from the package.

assert_type(django_tasks.__all__, list[str])
not_exported = django_tasks.registered_task  # type: ignore[attr-defined]

"""The `Task` value and the `@task` decorator."""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
import inspect
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    NamedTuple,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from asgiref.sync import async_to_sync, sync_to_async
from typing_extensions import TypeIs

from django_tasks import _signatures, exceptions
from django_tasks.retries import RetryPolicy

if TYPE_CHECKING:
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.results import TaskContext, TaskResult

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_TASK_BACKEND_ALIAS = "default"
DEFAULT_TASK_QUEUE_NAME = "default"
DEFAULT_QUEUE_NAME = DEFAULT_TASK_QUEUE_NAME
DEFAULT_TASK_PRIORITY = 0
TASK_MIN_PRIORITY = -100
TASK_MAX_PRIORITY = 100

_registry: dict[str, Task[Any, Any]] = {}


def registered_task(module_path: str) -> Task[Any, Any] | None:
    """Return the task registered at `module_path`, if there is one.

    Tasks are registered when they are made: by our `@task`, by `django.tasks`' `@task`
    with one of our backends (Django 6), or by `Task(...)` for a module-level function.
    """
    return _registry.get(module_path)


def registered_tasks() -> list[Task[Any, Any]]:
    """Return every task registered so far."""
    return list(_registry.values())


def find_task(module_path: str) -> Task[Any, Any]:
    """Return the registered task at `module_path`, for a worker about to run it.

    Only functions made into tasks (see `registered_task`) are ever returned, never
    any other callable the path may name. If the task is not
    registered yet, its module is imported only when it belongs to an installed app,
    so a stored path can never make a worker import arbitrary code.
    """
    found = _registry.get(module_path)
    if found is None and _in_installed_app(module_path):
        module_name = module_path.rpartition(".")[0]
        try:
            importlib.import_module(module_name)
        except ImportError as error:
            raise exceptions.InvalidTask(
                f"Task '{module_path}' cannot be run: importing '{module_name}' failed ({error}).",
                task_path=module_path,
            ) from None
        found = _registry.get(module_path)
    if found is None:
        raise exceptions.InvalidTask(
            f"'{module_path}' is not a registered task; only functions decorated with @task "
            "in an installed app's modules can be run.",
            task_path=module_path,
        )
    return found


def _in_installed_app(module_path: str) -> bool:
    from django.apps import apps

    return any(module_path.startswith(f"{config.name}.") for config in apps.get_app_configs())


_declaring: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "django_tasks_declaring", default=False
)
"""True while `@task` builds a task (see `Task.__post_init__`)."""


def _task_class(alias: str) -> type[Task[Any, Any]]:
    """Return the task class of the backend `alias`, or `Task` if that backend cannot be
    built yet (see `Task.__post_init__`)."""
    from django_tasks import task_backends

    try:
        return task_backends[alias].task_class
    except exceptions.InvalidTaskBackend as error:
        if not _left_to_the_check(alias, error):
            raise
        return Task


def _left_to_the_check(alias: str, error: exceptions.InvalidTaskBackend) -> bool:
    """Tell whether the backend error is the system check's to report: TASKS names
    `alias`, and does not name a `django.tasks` backend there (which our API refuses)."""
    from django_tasks import _interop, task_backends

    if isinstance(error, _interop.DjangoBackendRefused):
        return False
    try:
        return alias in task_backends.settings
    except exceptions.InvalidTaskBackend:  # TASKS itself is not a dict
        return True


def _is_async(
    func: Callable[P, T] | Callable[P, Awaitable[T]],
) -> TypeIs[Callable[P, Awaitable[T]]]:
    return inspect.iscoroutinefunction(func)


def _is_module_level(func: Callable[..., Any]) -> bool:
    return (
        inspect.isfunction(func)
        and func.__name__ != "<lambda>"
        and func.__qualname__ == func.__name__
    )


def _check_function(func: Callable[..., Any], *, takes_context: bool) -> None:
    """Raise `InvalidTask` unless `func` is a module-level function with a usable signature."""
    path = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
    if not _is_module_level(func):
        raise exceptions.InvalidTask(
            f"Task function '{path}' must be defined at module level, so a worker can "
            "find it by its import path; move it out of the enclosing function or class.",
            task_path=path,
        )
    _signatures.signature_of(func, takes_context=takes_context, task_path=path)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Task(Generic[P, T]):
    """A function that can run in the background, with its default options.

    `P` is the function's parameters (without the context parameter of a
    `takes_context=True` task) and `T` its return type (awaited, for an async function).
    """

    func: Callable[P, T] | Callable[P, Awaitable[T]]
    priority: int = DEFAULT_TASK_PRIORITY
    backend: str = DEFAULT_TASK_BACKEND_ALIAS
    queue_name: str = DEFAULT_TASK_QUEUE_NAME
    run_after: datetime | timedelta | None = None
    """The earliest time the task may run; a `timedelta` counts from enqueue."""
    takes_context: bool = False
    enqueue_on_commit: bool | None = None
    """Enqueue when the current transaction commits; None follows the backend's setting."""
    retry: RetryPolicy | None = None
    """When to try the task again after it fails; None tries once (see `RetryPolicy`)."""

    def __post_init__(self) -> None:
        _check_function(self.func, takes_context=self.takes_context)
        try:
            backend = self.get_backend()
        except exceptions.InvalidTaskBackend as error:
            # While `@task` declares a task, a backend in TASKS that cannot be built (bad
            # OPTIONS, say) is the `django_tasks.E001` check's to report, with its hint,
            # and enqueue raises the same error: failing here would fail the import of
            # every tasks module first. Anywhere else (`using()`), and for an alias TASKS
            # does not name (a typo), it fails here.
            if not (_declaring.get() and _left_to_the_check(self.backend, error)):
                raise
        else:
            backend.validate_task(self)
        # django.tasks' @task builds this class for our backends without registering it:
        # register it here. The first task made for a function stays registered, so a
        # copy made by using() never replaces the one declared at import.
        _registry.setdefault(self.module_path, self)

    @property
    def name(self) -> str:
        """Return the function's name."""
        return self.func.__name__

    @property
    def module_path(self) -> str:
        """Return the dotted path the task is registered under."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @property
    def signature(self) -> _signatures.TaskSignature:
        """Return the validators built from the function's signature."""
        return _signatures.signature_of(
            self.func, takes_context=self.takes_context, task_path=self.module_path
        )

    def using(
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | timedelta | None = None,
        backend: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Task[P, T]:
        """Return a copy of the task with other defaults, validated against its backend."""
        changes: dict[str, Any] = {
            "priority": priority,
            "queue_name": queue_name,
            "run_after": run_after,
            "backend": backend,
            "retry": retry,
        }
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def get_backend(self) -> BaseTaskBackend:
        """Return the backend instance the task is enqueued on."""
        from django_tasks import task_backends

        return task_backends[self.backend]

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[T]:
        """Validate the arguments and enqueue a call of the task.

        Raise `InvalidTask` naming every bad argument, before anything is stored.
        """
        return self.get_backend().enqueue(self, args, kwargs)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[T]:
        """Validate the arguments and enqueue a call of the task."""
        return await self.get_backend().aenqueue(self, args, kwargs)

    def arguments(self, *args: P.args, **kwargs: P.kwargs) -> TaskArguments[P]:
        """Return one call's arguments, for `enqueue_many`; type checkers check them."""
        # `TaskArguments(args, kwargs)` without its Python-level `__new__`: this runs once
        # per call of a bulk enqueue.
        return _new_tuple(TaskArguments, (args, kwargs))

    def enqueue_many(self, calls: Iterable[TaskArguments[P]]) -> list[TaskResult[T]]:
        """Validate many calls, then enqueue them together (one INSERT on the database).

        `task.enqueue_many(task.arguments(order.id) for order in orders)`. If any call is
        invalid, `InvalidTask` names each bad call by its index and nothing is enqueued.
        """
        return self.get_backend().enqueue_many(self, calls)

    async def aenqueue_many(self, calls: Iterable[TaskArguments[P]]) -> list[TaskResult[T]]:
        """Validate many calls, then enqueue them together, from async code."""
        return await self.get_backend().aenqueue_many(self, list(calls))

    def get_result(self, result_id: str) -> TaskResult[T]:
        """Return the result with `result_id`.

        Raise `TaskResultDoesNotExist` if there is none, and `TaskResultMismatch` if it
        belongs to another task.
        """
        return self._check_owner(self.get_backend().get_result(result_id))

    async def aget_result(self, result_id: str) -> TaskResult[T]:
        """Return the result with `result_id`; see `get_result`."""
        return self._check_owner(await self.get_backend().aget_result(result_id))

    def _check_owner(self, result: TaskResult[Any]) -> TaskResult[T]:
        if result.task.func != self.func:
            raise exceptions.TaskResultMismatch(
                f"Task result {result.id} belongs to task '{result.task.module_path}', "
                f"not to '{self.module_path}'."
            )
        return result

    def call(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the function now, in this thread, without validation or a backend.

        A `takes_context=True` task receives a context whose result is RUNNING, with a
        fresh id, as if this call were its first attempt.
        """
        func: Callable[..., T] | Callable[..., Awaitable[T]] = self.func
        context = self._call_context(args, kwargs)
        if _is_async(func):
            return async_to_sync(func)(*context, *args, **kwargs)
        return func(*context, *args, **kwargs)

    async def acall(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the function now, from async code, without validation or a backend."""
        func: Callable[..., T] | Callable[..., Awaitable[T]] = self.func
        context = self._call_context(args, kwargs)
        if _is_async(func):
            return await func(*context, *args, **kwargs)
        return await sync_to_async(func)(*context, *args, **kwargs)

    def _call_context(self, args: Any, kwargs: Any) -> list[TaskContext[T]]:
        if not self.takes_context:
            return []
        from django.utils import timezone

        from django_tasks.results import TaskContext, TaskResult, TaskResultStatus

        now = timezone.now()
        running: TaskResult[T] = TaskResult(
            task=self,
            id=f"call-{uuid.uuid4()}",
            status=TaskResultStatus.RUNNING,
            enqueued_at=None,
            started_at=now,
            finished_at=None,
            last_attempted_at=now,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.backend,
            worker_ids=["call"],
        )
        return [TaskContext(task_result=running)]


class TaskArguments(NamedTuple, Generic[P]):
    """The arguments of one call of a task, made by `Task.arguments(...)`.

    A named tuple `(args, kwargs)`, so a bulk enqueue passes the calls to its backend
    as they are.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


_new_tuple = tuple.__new__


class _TaskDecorator(Protocol):
    @overload
    def __call__(self, function: Callable[P, Coroutine[Any, Any, T]], /) -> Task[P, T]: ...
    @overload
    def __call__(self, function: Callable[P, T], /) -> Task[P, T]: ...


class _ContextTaskDecorator(Protocol):
    @overload
    def __call__(
        self, function: Callable[Concatenate[TaskContext[Any], P], Coroutine[Any, Any, T]], /
    ) -> Task[P, T]: ...
    @overload
    def __call__(
        self, function: Callable[Concatenate[TaskContext[Any], P], T], /
    ) -> Task[P, T]: ...


@overload
def task(function: Callable[P, Coroutine[Any, Any, T]], /) -> Task[P, T]: ...
@overload
def task(function: Callable[P, T], /) -> Task[P, T]: ...
@overload
def task(
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    enqueue_on_commit: bool | None = ...,
    takes_context: Literal[False] = ...,
    retry: RetryPolicy | None = ...,
) -> _TaskDecorator: ...
@overload
def task(
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    enqueue_on_commit: bool | None = ...,
    takes_context: Literal[True],
    retry: RetryPolicy | None = ...,
) -> _ContextTaskDecorator: ...
def task(
    function: Callable[..., Any] | None = None,
    /,
    *,
    priority: int = DEFAULT_TASK_PRIORITY,
    queue_name: str = DEFAULT_TASK_QUEUE_NAME,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    enqueue_on_commit: bool | None = None,
    takes_context: bool = False,
    retry: RetryPolicy | None = None,
) -> Task[Any, Any] | Callable[[Callable[..., Any]], Task[Any, Any]]:
    """Turn a module-level function into a `Task`, as `@task` or `@task(...)`.

    The function's signature becomes a pydantic model here, so an unsupported or
    malformed signature raises `InvalidTask` at import time, not at the first enqueue.
    """

    def decorate(func: Callable[..., Any]) -> Task[Any, Any]:
        _check_function(func, takes_context=takes_context)
        token = _declaring.set(True)
        try:
            new_task: Task[Any, Any] = _task_class(backend)(
                func=func,
                priority=priority,
                queue_name=queue_name,
                backend=backend,
                takes_context=takes_context,
                enqueue_on_commit=enqueue_on_commit,
                retry=retry,
            )
        finally:
            _declaring.reset(token)
        _registry[new_task.module_path] = new_task
        return new_task

    if function is not None:
        return decorate(function)
    return decorate

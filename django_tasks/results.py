"""Task results: what a backend knows about one enqueued call of a task."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.db.models import TextChoices
from django.utils.module_loading import import_string
from django.utils.translation import pgettext_lazy

if TYPE_CHECKING:
    from django_tasks.tasks import Task

T = TypeVar("T")


class TaskResultStatus(TextChoices):
    """Where a task result is in its life: READY, RUNNING, then FAILED or SUCCESSFUL."""

    READY = ("READY", pgettext_lazy("Task", "Ready"))
    """Enqueued, or waiting to be run again."""
    RUNNING = ("RUNNING", pgettext_lazy("Task", "Running"))
    FAILED = ("FAILED", pgettext_lazy("Task", "Failed"))
    """The task raised, returned a value its annotation rejects, or could not start."""
    SUCCESSFUL = ("SUCCESSFUL", pgettext_lazy("Task", "Successful"))

    # The names used by the original django-tasks backport, set below: aliases of
    # READY and SUCCESSFUL, not members of their own.
    NEW: TaskResultStatus
    SUCCEEDED: TaskResultStatus


TaskResultStatus.NEW = TaskResultStatus.READY
TaskResultStatus.SUCCEEDED = TaskResultStatus.SUCCESSFUL
ResultStatus = TaskResultStatus


def storable_text(text: str) -> str:
    """Return `text` with what JSON columns refuse escaped: NUL, and lone surrogates.

    PostgreSQL's jsonb rejects the NUL character, and no UTF-8 encoder takes a lone
    surrogate; an exception message may hold either.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskError:
    """One failed attempt: the exception's class path and its formatted traceback."""

    exception_class_path: str
    traceback: str

    @property
    def exception_class(self) -> type[BaseException]:
        """Import and return the exception class, or raise `ValueError` if it is not one."""
        exception_class = import_string(self.exception_class_path)
        if not isinstance(exception_class, type) or not issubclass(exception_class, BaseException):
            raise ValueError(f"{self.exception_class_path!r} does not name an exception class.")
        return exception_class

    @classmethod
    def from_exception(cls, error: BaseException) -> TaskError:
        """Describe `error`, with the traceback it carries."""
        import traceback

        kind = type(error)
        text = "".join(traceback.format_exception(error))
        return cls(
            exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
            traceback=storable_text(text),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult(Generic[T]):
    """A snapshot of one enqueued call of a task.

    Results are frozen: `refresh()` returns a new, up-to-date result rather than changing
    this one, so rebind it (`result = result.refresh()`).
    """

    task: Task[Any, T]
    id: str
    status: TaskResultStatus
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_attempted_at: datetime | None
    args: list[Any]
    """Positional arguments, as the task receives them (a `datetime` stays a `datetime`)."""
    kwargs: dict[str, Any]
    """Keyword arguments, as the task receives them."""
    backend: str
    errors: list[TaskError] = dataclasses.field(default_factory=list)
    worker_ids: list[str] = dataclasses.field(default_factory=list)
    _return_value: T | None = None

    @property
    def return_value(self) -> T:
        """Return what the task returned, as its declared return type.

        Raise `ValueError` if the task failed or has not finished yet: a task may
        legitimately return None, so None cannot mean "no value".
        """
        if self.status == TaskResultStatus.SUCCESSFUL:
            return self._return_value  # type: ignore[return-value]
        if self.status == TaskResultStatus.FAILED:
            raise ValueError(f"Task result {self.id} failed, so it has no return value.")
        raise ValueError(f"Task result {self.id} has not finished yet (status {self.status}).")

    @property
    def is_finished(self) -> bool:
        """Tell whether the task has failed or succeeded."""
        return self.status in (TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL)

    @property
    def attempts(self) -> int:
        """Return how many times a worker started this task."""
        return len(self.worker_ids)

    @property
    def exception_class(self) -> type[BaseException] | None:
        """Return the exception class of the last error, or None if there is none."""
        return self.errors[-1].exception_class if self.errors else None

    @property
    def traceback(self) -> str | None:
        """Return the traceback of the last error, or None if there is none."""
        return self.errors[-1].traceback if self.errors else None

    def refresh(self) -> TaskResult[T]:
        """Fetch this result again from its backend and return the fresh copy."""
        return self.task.get_backend().get_result(self.id)

    async def arefresh(self) -> TaskResult[T]:
        """Fetch this result again from its backend and return the fresh copy."""
        return await self.task.get_backend().aget_result(self.id)

    def evolve(self, **changes: Any) -> TaskResult[T]:
        """Return a copy with `changes` applied (as `dataclasses.replace`, for less)."""
        if type(self) is not TaskResult or not changes.keys() <= _FIELD_NAMES:
            return dataclasses.replace(self, **changes)
        new: Any = object.__new__(_Unfrozen)
        new.task = self.task
        new.id = self.id
        new.status = self.status
        new.enqueued_at = self.enqueued_at
        new.started_at = self.started_at
        new.finished_at = self.finished_at
        new.last_attempted_at = self.last_attempted_at
        new.args = self.args
        new.kwargs = self.kwargs
        new.backend = self.backend
        new.errors = self.errors
        new.worker_ids = self.worker_ids
        new._return_value = self._return_value
        for name, value in changes.items():
            setattr(new, name, value)
        new.__class__ = TaskResult
        return new  # type: ignore[no-any-return]


_FIELD_NAMES = frozenset(field.name for field in dataclasses.fields(TaskResult))


class _Unfrozen(Generic[T]):
    """`TaskResult`'s slots without its frozen `__setattr__`: where results are built.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`, and
    `dataclasses.replace` calls `__init__`: together most of a bulk enqueue's per-call
    work after validation (1.3 against 0.5 µs a result, measured), and a share of a
    worker's per-task work. A result built here is filled by plain attribute stores,
    then becomes a `TaskResult` by assigning its `__class__`, which Python allows between
    classes of the same layout: the same base (`Generic`) and the same slots.
    """

    __slots__ = TaskResult.__slots__  # its fields, so typed as TaskResult's: see `new_result`


def new_result(
    task: Task[Any, T],
    result_id: str,
    status: TaskResultStatus,
    enqueued_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None,
    last_attempted_at: datetime | None,
    args: list[Any],
    kwargs: dict[str, Any],
    backend: str,
    errors: list[TaskError],
    worker_ids: list[str],
    return_value: T | None,
) -> TaskResult[T]:
    """Return `TaskResult(...)` with these fields, for the library's hot paths.

    The same result as the constructor's, for less than half its time (see
    `_Unfrozen`): a bulk enqueue makes one per call, a worker one per task.
    """
    result: Any = object.__new__(_Unfrozen)  # TaskResult's fields, writable
    result.task = task
    result.id = result_id
    result.status = status
    result.enqueued_at = enqueued_at
    result.started_at = started_at
    result.finished_at = finished_at
    result.last_attempted_at = last_attempted_at
    result.args = args
    result.kwargs = kwargs
    result.backend = backend
    result.errors = errors
    result.worker_ids = worker_ids
    result._return_value = return_value
    result.__class__ = TaskResult
    return result  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskContext(Generic[T]):
    """What a `takes_context=True` task receives first: its own running result."""

    task_result: TaskResult[T]

    @property
    def attempt(self) -> int:
        """Return which attempt this is, counting from 1."""
        return self.task_result.attempts

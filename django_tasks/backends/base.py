"""The base class every task backend derives from."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import inspect
import threading
import typing
from abc import ABCMeta, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import checks
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ImportString, ValidationError

from django_tasks import (
    _ids,
    _interop,
    _serialization,
    _signatures,
    exceptions,
    results,
    serializers,
)
from django_tasks.tasks import (
    DEFAULT_TASK_PRIORITY,
    DEFAULT_TASK_QUEUE_NAME,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    Task,
)

T = TypeVar("T")


class BackendOptions(BaseModel):
    """The `OPTIONS` every backend understands.

    `SERIALIZER` is the dotted path of a class with `dumps` and `loads` (see
    `django_tasks.serializers`); it is instantiated without arguments.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    serializer: ImportString[type[serializers.Serializer]] = Field(
        default=serializers.OrjsonSerializer, alias="SERIALIZER"
    )


class BaseTaskBackend(metaclass=ABCMeta):
    """Store and run tasks; subclasses say what they support with the `supports_*` flags."""

    task_class: ClassVar[type[Task[Any, Any]]] = Task
    options_class: ClassVar[type[BackendOptions]] = BackendOptions

    supports_defer: ClassVar[bool] = False
    """Whether tasks may be given a `run_after` time."""
    supports_async_task: ClassVar[bool] = False
    """Whether `async def` task functions may be enqueued."""
    supports_get_result: ClassVar[bool] = False
    """Whether results can be fetched by id from any thread or process."""
    supports_priority: ClassVar[bool] = False
    """Whether tasks run in priority order, so priorities other than 0 are meaningful."""

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        self.alias = alias
        self.queues = self._parse_queues(params.get("QUEUES", [DEFAULT_TASK_QUEUE_NAME]))
        on_commit = params.get("ENQUEUE_ON_COMMIT", False)
        if not isinstance(on_commit, bool):
            raise exceptions.InvalidTaskBackend(
                f"TASKS['{alias}']['ENQUEUE_ON_COMMIT'] must be True or False, not {on_commit!r}."
            )
        self.enqueue_on_commit: bool = on_commit
        self.options = self._parse_options(params.get("OPTIONS", {}))
        self.serializer: serializers.Serializer = self.options.serializer()

    def _parse_queues(self, queues: Any) -> frozenset[str]:
        """Return `QUEUES` as a set of names: a list (or tuple or set) of strings, `[]`
        for any queue."""
        if isinstance(queues, (list, tuple, set, frozenset)) and all(
            isinstance(name, str) for name in queues
        ):
            return frozenset(queues)
        raise exceptions.InvalidTaskBackend(
            f"TASKS['{self.alias}']['QUEUES'] must be a list of queue names (or [] to allow "
            f"any), not {queues!r}."
        )

    def _parse_options(self, options: Mapping[str, Any]) -> Any:
        try:
            return self.options_class.model_validate(options)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'OPTIONS'}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            raise exceptions.InvalidTaskBackend(
                f"TASKS['{self.alias}']['OPTIONS'] is invalid: {problems}."
            ) from None

    def validate_task(self, task: Task[Any, Any]) -> None:
        """Raise `InvalidTask` if this backend cannot run `task` as configured.

        Every method that takes a task also accepts a `django.tasks.Task` (Django 6), as
        Django's `Task.__post_init__` and `Task.enqueue` pass one; it is validated and
        enqueued as the equivalent django_tasks `Task`.
        """
        task = _interop.as_task(task)
        if isinstance(task.priority, bool) or not isinstance(task.priority, int):
            self._reject(task, f"priority must be an int, not {type(task.priority).__name__}")
        if not TASK_MIN_PRIORITY <= task.priority <= TASK_MAX_PRIORITY:
            self._reject(
                task,
                f"priority {task.priority} is outside {TASK_MIN_PRIORITY}..{TASK_MAX_PRIORITY}",
            )
        if not self.supports_priority and task.priority != DEFAULT_TASK_PRIORITY:
            self._reject(task, f"backend '{self.alias}' does not support priorities")
        if self.queues and task.queue_name not in self.queues:
            queues = ", ".join(sorted(self.queues))
            self._reject(
                task,
                f"queue '{task.queue_name}' is not in QUEUES of backend '{self.alias}' "
                f"({queues}); add it there or pick one of those",
            )
        if not self.supports_async_task and inspect.iscoroutinefunction(task.func):
            self._reject(task, f"backend '{self.alias}' does not run async functions")
        self._validate_run_after(task)

    def _validate_run_after(self, task: Task[Any, Any]) -> None:
        run_after: object = task.run_after  # as given: using() takes anything at run time
        if run_after is None:
            return
        if not isinstance(run_after, (datetime, timedelta)):
            self._reject(
                task,
                "run_after must be an aware datetime or a timedelta (from now), not "
                f"{type(run_after).__name__} {run_after!r}",
            )
        if not self.supports_defer:
            self._reject(task, f"backend '{self.alias}' does not support run_after")
        if isinstance(run_after, datetime) and settings.USE_TZ and timezone.is_naive(run_after):
            self._reject(task, "run_after must be an aware datetime")

    def _reject(self, task: Task[Any, Any], problem: str) -> None:
        raise exceptions.InvalidTask(
            f"Task '{task.module_path}' is invalid: {problem}.", task_path=task.module_path
        )

    def new_result_id(self) -> str:
        """Return a new, unique result id: a time-ordered UUID (version 7)."""
        return _ids.new_id()

    def new_result_ids(self, count: int) -> list[str]:
        """Return `count` new, unique result ids, made in one go, in increasing order."""
        if type(self).new_result_id is not BaseTaskBackend.new_result_id:
            return [self.new_result_id() for _ in range(count)]
        return _ids.new_ids(count)

    def prepare(
        self,
        task: Task[Any, T],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        enqueued_at: datetime | None = None,
    ) -> tuple[results.TaskResult[T], bytes | str]:
        """Validate a call and return its READY result and its JSON payload."""
        task = _interop.as_task(task)
        return self._prepare_call(self._resolve(task), args, kwargs, enqueued_at)

    def _resolve(self, task: Task[Any, T]) -> Task[Any, T]:
        """Validate `task` here, and turn a `run_after` timedelta into a time."""
        self.validate_task(task)
        if isinstance(task.run_after, timedelta):
            task = dataclasses.replace(task, run_after=timezone.now() + task.run_after)
        return task

    def _prepare_call(
        self,
        task: Task[Any, T],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        enqueued_at: datetime | None,
    ) -> tuple[results.TaskResult[T], bytes | str]:
        bound = task.signature.bind_call(args, kwargs)
        data = _serialization.dumps_call(task.module_path, bound, self.serializer, task.signature)
        result = results.TaskResult(
            task=task,
            id=self.new_result_id(),
            status=results.TaskResultStatus.READY,
            enqueued_at=enqueued_at,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=bound.args,
            kwargs=bound.kwargs,
            backend=self.alias,
        )
        return result, data

    def enqueue(
        self, task: Task[Any, T], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> results.TaskResult[T]:
        """Validate a call of `task` and enqueue it.

        With `enqueue_on_commit`, the call is validated now but stored when the current
        transaction commits: the returned result is READY with `enqueued_at` None, and
        its id only resolves with `get_result` after the commit. If the transaction rolls
        back, the task is never enqueued.
        """
        task = _interop.as_task(task)
        on_commit = self._enqueues_on_commit(task)
        now = None if on_commit else timezone.now()
        result, data = self.prepare(task, args, kwargs, enqueued_at=now)
        if on_commit:
            transaction.on_commit(
                functools.partial(self.enqueue_prepared, result, _serialization.to_keep(data)),
                using=self.transaction_alias(),
            )
            return result
        return self.enqueue_prepared(result, data)

    def enqueue_many(
        self, task: Task[Any, T], calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]]
    ) -> list[results.TaskResult[T]]:
        """Validate many calls of `task`, then enqueue them together.

        Every call is validated first; if any is invalid, `InvalidTask` names each bad
        call by its index and nothing is enqueued. `enqueue_on_commit` applies as for
        `enqueue`, to the whole batch.

        Python's cyclic garbage collector is paused while the calls are read from `calls`
        and validated (see `collection_paused`).
        """
        task = self._resolve(_interop.as_task(task))
        on_commit = self._enqueues_on_commit(task)
        stored = None
        with collection_paused():
            # The caller's generator runs in the pause too: run outside, its collections
            # promoted the calls read so far towards the oldest generation, and brought on
            # a full collection in most batches (a tenth of a 3-argument enqueue_many).
            listed = list(calls)
            now = None if on_commit else timezone.now()
            if now is not None:
                stored = self._store_while_preparing(task, listed, now)
            if stored is None:
                prepared = self._prepare_calls(task, listed, now)
        if stored is not None:
            return self._stored_many(stored)
        if not on_commit:
            return self.enqueue_prepared_many(prepared)
        transaction.on_commit(
            functools.partial(self.enqueue_prepared_many, prepared),
            using=self.transaction_alias(),
        )
        return [result for result, _ in prepared]

    def _store_while_preparing(
        self, task: Task[Any, T], calls: list[_signatures.Call], now: datetime
    ) -> list[results.TaskResult[T]] | None:
        """Validate and store calls at once, for backends that overlap the two; else None.

        Runs in `enqueue_many`'s collection pause; what it returns goes to `_stored_many`.
        """
        return None

    def _stored_many(self, stored: list[results.TaskResult[T]]) -> list[results.TaskResult[T]]:
        """Finish an enqueue of the calls `_store_while_preparing` stored (send signals)."""
        return stored

    def _prepare_calls(
        self,
        task: Task[Any, T],
        calls: Sequence[_signatures.Call],
        enqueued_at: datetime | None,
    ) -> list[tuple[results.TaskResult[T], bytes | str]]:
        """Validate and encode calls; if any is bad, raise `InvalidTask` naming each one.

        A call that fails validation and another that JSON cannot hold are both named.
        """
        path, signature = task.module_path, task.signature
        bound_calls, problems = signature.try_bind_calls(calls)
        if problems:
            good = [(index, bound) for index, bound in enumerate(bound_calls) if bound is not None]
            _, unencodable = _serialization.dumps_calls(
                path, [bound for _, bound in good], self.serializer, signature
            )
            problems.extend((good[index][0], error) for index, error in unencodable)
            raise _signatures.calls_invalid(path, sorted(problems, key=_first))
        bound = typing.cast(list[_signatures.BoundCall], bound_calls)
        encoded, unencodable = _serialization.dumps_calls(path, bound, self.serializer, signature)
        if unencodable:
            raise _signatures.calls_invalid(path, unencodable)
        ids = self.new_result_ids(len(bound))
        new_result, ready, alias = results.new_result, results.TaskResultStatus.READY, self.alias
        return [
            (
                new_result(
                    task,
                    result_id,
                    ready,
                    enqueued_at,
                    None,
                    None,
                    None,
                    call.args,
                    call.kwargs,
                    alias,
                    [],
                    [],
                    None,
                ),
                data,
            )
            for call, result_id, data in zip(bound, ids, encoded, strict=True)
        ]

    def enqueue_prepared_many(
        self, prepared: Sequence[tuple[results.TaskResult[T], bytes | str]]
    ) -> list[results.TaskResult[T]]:
        """Store (or run) validated calls; backends that can store many at once override it."""
        return [self.enqueue_prepared(result, data) for result, data in prepared]

    async def aenqueue_many(
        self, task: Task[Any, T], calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]]
    ) -> list[results.TaskResult[T]]:
        """Validate many calls of `task` and enqueue them together, from async code."""
        return await sync_to_async(self.enqueue_many, thread_sensitive=True)(task, list(calls))

    async def aenqueue(
        self, task: Task[Any, T], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> results.TaskResult[T]:
        """Validate a call of `task` and enqueue it, from async code."""
        return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)

    def _enqueues_on_commit(self, task: Task[Any, Any]) -> bool:
        wanted = (
            self.enqueue_on_commit if task.enqueue_on_commit is None else task.enqueue_on_commit
        )
        return wanted and transaction.get_connection(self.transaction_alias()).in_atomic_block

    def transaction_alias(self) -> str | None:
        """Return the database alias whose commit `enqueue_on_commit` waits for."""
        return None

    @staticmethod
    def stamp(result: results.TaskResult[T], now: datetime | None = None) -> results.TaskResult[T]:
        """Return `result` with `enqueued_at` set, unless it was set at validation.

        `now` (default: the current time) lets the calls of one batch share one time.
        """
        if result.enqueued_at:
            return result
        return result.evolve(enqueued_at=now or timezone.now())

    @abstractmethod
    def enqueue_prepared(
        self, result: results.TaskResult[T], data: bytes | str
    ) -> results.TaskResult[T]:
        """Store (or run) a validated call; send `task_enqueued`; return its result."""

    def get_result(self, result_id: str) -> results.TaskResult[Any]:
        """Return the result with `result_id`, or raise `TaskResultDoesNotExist`."""
        raise NotImplementedError(f"Backend '{self.alias}' does not keep results.")

    async def aget_result(self, result_id: str) -> results.TaskResult[Any]:
        """Return the result with `result_id`, from async code."""
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        """Return system-check messages about this backend's configuration."""
        return []


def _first(problem: _signatures.Problem) -> int:
    return problem[0]


_pause_lock = threading.Lock()
_pauses = 0
_resume_collection = False


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a bulk enqueue builds its objects.

    A bulk enqueue allocates several objects per call, and all of them live until it
    returns, so the collections they trigger find no garbage: they only re-scan the
    process's heap, which for a Django project made them 40% of a 10,000-call
    `enqueue_many`. Reference counting still frees everything as usual. Inside a pause
    run the caller's iterable of calls, validation and the library's own code
    (serialization, building rows, and on SQLite the INSERTs of a batch stored while it
    is validated: see `database.overlap`, whose statements reach the project's
    `execute_wrapper`s, and `connection_created` receivers if they connect, in the
    pause). The library runs no task or `task_enqueued` receiver there. Whatever the
    caller's iterable runs (a query, even a nested enqueue on a backend that runs tasks
    at once) runs paused too, and cyclic garbage made meanwhile waits for the pause's
    end. The switch is process-wide:
    overlapping pauses (other threads) are counted, and collection resumes when the last
    one ends, unless it was already off when the first began.
    """
    global _pauses, _resume_collection
    with _pause_lock:
        if _pauses == 0:
            _resume_collection = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume_collection:
                gc.enable()

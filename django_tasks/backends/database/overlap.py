"""A bulk enqueue on SQLite that validates the next calls while SQLite stores the last ones.

A bulk enqueue's INSERT on SQLite is mostly time spent in SQLite's own code, during
which Python's other threads may run (the sqlite3 module lets go of the interpreter
while a statement runs). So on SQLite an `enqueue_many` of more than `CHUNK` calls is
stored chunk by chunk in one transaction, and while one chunk's INSERT runs, a helper
thread validates and encodes the next. Measured on these 2-core machines, 10,000 calls
a batch, each way in its own process: 15 % more calls a second with 3 arguments, 20-35 %
with 10. MariaDB gained nothing here (its server shares the two cores with the helper),
and PostgreSQL's `COPY` already formats rows while the server stores the ones before:
both keep the usual path.

Only where that moves no project code to the helper thread:

- every parameter of the task is of Python's own types (`TaskSignature.built_in_only`):
  no Django model to fetch (on the helper's own connection, which would not see the
  caller's transaction), no validator of the project's;
- the backend's serializer is one of the library's, and the backend does not override
  `_prepare_calls`.

Everything else is as in the usual path: every call is validated, and if one is bad,
`InvalidTask` names each bad call by its index (the whole batch is validated again, once
the transaction has rolled back, to say so) and nothing is stored. The helper runs only
one chunk ahead, so the two threads take turns rather than contend for the interpreter;
if it cannot start, or never gets to run, the caller's thread validates every chunk.

Each chunk's result ids are made with the chunk, so ids are in increasing order within a
chunk, and across chunks as far as the clock's milliseconds tell them apart. The rows
are inserted in the order of the calls, which is the order workers claim rows that
are ready at the same time.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections

from django_tasks import exceptions, results, serializers
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.backends.database import inserts

if TYPE_CHECKING:
    from django_tasks._signatures import Call
    from django_tasks.backends.database.backend import DatabaseBackend
    from django_tasks.tasks import Task

T = TypeVar("T")

CHUNK = inserts.CHUNK
"""Calls validated, and then stored, at a time: 1,000 measured best (500 and 2,000 no better)."""
_VENDORS = frozenset({"sqlite"})
_SERIALIZERS = (serializers.OrjsonSerializer, serializers.JsonSerializer)

Prepared = list[inserts.Prepared]


def store(
    backend: DatabaseBackend, task: Task[Any, T], calls: list[Call], now: datetime
) -> list[results.TaskResult[T]] | None:
    """Validate and store `calls` chunk by chunk (see the module); None if that does not apply."""
    alias = backend.db_alias()
    if not _applies(backend, task, calls, alias):
        return None
    starts = range(0, len(calls), CHUNK)

    def prepare(index: int) -> Prepared:
        start = starts[index]
        return backend._prepare_calls(task, calls[start : start + CHUNK], now)

    ahead = _Ahead(prepare, len(starts))
    if not ahead.start():
        return None
    stored: list[results.TaskResult[T]] = []
    try:
        inserts.insert_ready_chunks(alias, backend.alias, _keeping(iter(ahead), stored))
    except exceptions.InvalidTask as error:
        ahead.stop()
        # Rolled back: validate the whole batch to name every bad call by its index.
        backend._prepare_calls(task, calls, now)
        raise error  # not reached: a call refused in a chunk is refused in the batch
    finally:
        ahead.stop()
    return stored


def _applies(backend: DatabaseBackend, task: Task[Any, Any], calls: list[Call], alias: str) -> bool:
    return (
        len(calls) > CHUNK
        and connections[alias].vendor in _VENDORS
        and type(backend.serializer) in _SERIALIZERS
        and type(backend)._prepare_calls is BaseTaskBackend._prepare_calls
        and task.signature.built_in_only
    )


def _keeping(
    chunks: Iterator[Prepared], stored: list[results.TaskResult[Any]]
) -> Iterator[Prepared]:
    """Yield each chunk, keeping its results once the one after is asked for (stored)."""
    for prepared in chunks:
        yield prepared
        stored.extend(result for result, _ in prepared)


class _Ahead:
    """Chunks prepared in order, each by a helper thread or else by the caller's.

    Iterating yields chunk after chunk. Before it yields one (for the caller to store),
    it lets the helper prepare one more; when the caller needs a chunk the helper has
    not taken, the caller prepares it. Chunks are taken in order, under a lock, by
    whichever thread comes first.
    """

    def __init__(self, prepare: Callable[[int], Prepared], count: int) -> None:
        self._prepare = prepare
        self._count = count
        self._lock = threading.Lock()
        self._next = 0
        self._stopped = False
        self._go = threading.Semaphore(0)
        self._done = [threading.Event() for _ in range(count)]
        self._outcomes: list[tuple[Prepared | None, BaseException | None]] = [(None, None)] * count
        self._thread = threading.Thread(
            target=self._help, name="django_tasks-enqueue_many", daemon=True
        )

    def start(self) -> bool:
        """Start the helper thread; tell whether it could be started."""
        try:
            self._thread.start()
        except RuntimeError:  # no thread to be had (a limit on threads, an exiting interpreter)
            return False
        return True

    def stop(self) -> None:
        """Let the helper take no more chunks, and wait for the one it prepares to finish."""
        with self._lock:
            self._stopped = True
        self._go.release()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __iter__(self) -> Iterator[Prepared]:
        for index in range(self._count):
            if self._take(index):
                prepared = self._prepare(index)
            else:  # the helper took it: wait for it
                self._done[index].wait()
                done, error = self._outcomes[index]
                if error is not None:
                    raise error
                prepared = typing.cast(Prepared, done)
            if index + 1 < self._count:
                self._go.release()  # the helper prepares the next while this one is stored
            yield prepared

    def _take(self, index: int) -> bool:
        """Take chunk `index` for the caller, unless the helper has taken it."""
        with self._lock:
            if self._next != index:
                return False
            self._next += 1
            return True

    def _take_next(self) -> int | None:
        """Take the next chunk for the helper, if any is left and the caller goes on."""
        with self._lock:
            if self._stopped or self._next >= self._count:
                return None
            self._next += 1
            return self._next - 1

    def _help(self) -> None:
        while True:
            self._go.acquire()
            index = self._take_next()
            if index is None:
                return
            try:
                self._outcomes[index] = (self._prepare(index), None)
            except BaseException as error:  # handed to the caller, which raises it
                self._outcomes[index] = (None, error)
            finally:
                self._done[index].set()

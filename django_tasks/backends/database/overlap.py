"""A bulk enqueue on SQLite that validates the next calls while SQLite stores the last ones.

A bulk enqueue's INSERT on SQLite is mostly time spent in SQLite's own code, during
which Python's other threads may run (the sqlite3 module lets go of the interpreter
while a statement runs). So on SQLite an `enqueue_many` of more than `CHUNK` calls is
stored chunk by chunk in one transaction, and while one chunk's INSERT runs, a helper
thread validates and encodes the next. Measured on these 2-core machines, 10,000 calls
a batch, each way in its own process: 15 % more calls a second with 3 arguments, 21-36 %
with 10. MariaDB gained nothing here (its server shares the two cores with the helper),
and PostgreSQL's `COPY` already formats rows while the server stores the ones before:
both keep the usual path.

Only where that moves no code of the project to the helper thread, which would not see
the caller's thread-locals, context variables or transaction:

- every parameter of the task is of Python's own types (`TaskSignature.built_in_only`):
  no Django model to fetch, no validator of the project's. What the values themselves
  bring along still runs there, as it would on the caller's thread: a `tzinfo`'s
  `utcoffset`, the methods of a subclass of `str` or `dict`;
- the backend's serializer is one of the library's, and the backend keeps the
  library's `_prepare_calls`, result ids and `enqueue_prepared_many` (which such a
  batch does not go through);
- no pydantic plugin is installed (it would run on every validation);
- the backend's `OPTIONS` do not turn it off (`"BULK_HELPER_THREAD": False`).

Everything else is as in the usual path: every call is validated, and if one is bad,
`InvalidTask` names each bad call by its index (the whole batch is validated again, once
the transaction has rolled back, to say so) and nothing is stored. The helper runs only
one chunk ahead, so the two threads take turns rather than contend for the interpreter.
If the helper cannot start, the usual path runs; if it never gets to run, the caller's
thread validates every chunk itself.

The price: SQLite's write lock, which the usual path holds only while the rows are
inserted, is held from the first chunk's INSERT to the commit, while the later chunks
are validated too: for 10,000 calls, about 45-50 ms instead of 30, measured with 3 and
10 arguments. Other writers wait for it (workers' claims and finishes, other enqueues)
up to the connection's `timeout`. A bad call in a later chunk is found after the chunks
before it were inserted; they are rolled back.

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

Chunk = list[inserts.Prepared]
"""The validated calls of one chunk, each with its JSON payload."""


def store(
    backend: DatabaseBackend, task: Task[Any, T], calls: list[Call], now: datetime
) -> list[results.TaskResult[T]] | None:
    """Validate and store `calls` chunk by chunk (see the module); None if that does not apply."""
    alias = backend.db_alias()
    if not _applies(backend, task, calls, alias):
        return None
    starts = range(0, len(calls), CHUNK)

    def prepare(index: int) -> Chunk:
        start = starts[index]
        return backend._prepare_calls(task, calls[start : start + CHUNK], now)

    ahead = _Ahead(prepare, len(starts))
    if not ahead.start():
        return None
    stored: list[results.TaskResult[T]] = []
    refused: exceptions.InvalidTask | None = None
    try:
        inserts.insert_ready_chunks(alias, backend.alias, _keeping(iter(ahead), stored))
    except exceptions.InvalidTask as error:
        refused = error  # rolled back
    finally:
        ahead.stop()
    if refused is not None:
        # The chunk's error names calls by their index in the chunk: validate the whole
        # batch to name every bad call by its index in it. A call's validation depends on
        # the call alone, so it raises; the chunk's own error is only a fallback.
        backend._prepare_calls(task, calls, now)
        raise refused
    return stored


def _applies(backend: DatabaseBackend, task: Task[Any, Any], calls: list[Call], alias: str) -> bool:
    """Tell whether `calls` may be stored chunk by chunk: no project code on the helper."""
    from django_tasks.backends.database.backend import DatabaseBackend

    kind = type(backend)
    own = (
        # Run by the helper thread...
        (BaseTaskBackend, "_prepare_calls"),
        (BaseTaskBackend, "new_result_id"),
        (BaseTaskBackend, "new_result_ids"),
        # ...or skipped by a batch stored this way.
        (DatabaseBackend, "enqueue_prepared_many"),
    )
    return (
        len(calls) > CHUNK
        and backend.options.bulk_helper_thread
        and connections[alias].vendor in _VENDORS
        and type(backend.serializer) in _SERIALIZERS
        and all(getattr(kind, name) is getattr(base, name) for base, name in own)
        and not _pydantic_plugins()
        and task.signature.built_in_only
    )


def _pydantic_plugins() -> bool:
    """Tell whether pydantic plugins are installed (they run on every validation), or may be."""
    try:
        from pydantic.plugin._loader import get_plugins
    except ImportError:  # pragma: no cover - another pydantic: assume there may be some
        return True
    return any(True for _ in get_plugins())


def _keeping(chunks: Iterator[Chunk], stored: list[results.TaskResult[Any]]) -> Iterator[Chunk]:
    """Yield each chunk, keeping its results once the one after is asked for (stored)."""
    for prepared in chunks:
        yield prepared
        stored.extend(result for result, _ in prepared)


class _Ahead:
    """Chunks prepared in order, each by a helper thread or else by the caller's.

    Iterating yields chunk after chunk. As it yields chunk `i` (for the caller to store),
    it asks the helper for chunk `i + 1`, and only that one: the helper never runs more
    than one chunk ahead. When the caller needs a chunk the helper has not taken, the
    caller prepares it. Chunks are taken in order, under a lock, by whichever thread
    comes first.
    """

    def __init__(self, prepare: Callable[[int], Chunk], count: int) -> None:
        self._prepare = prepare
        self._count = count
        self._changed = threading.Condition()
        self._next = 0
        """The first chunk not taken yet."""
        self._wanted = -1
        """The chunk the helper may take: the one after the chunk being stored."""
        self._stopped = False
        self._done = [threading.Event() for _ in range(count)]
        self._outcomes: list[tuple[Chunk | None, BaseException | None]] = [(None, None)] * count
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
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._thread.ident is not None:
            self._thread.join()

    def __iter__(self) -> Iterator[Chunk]:
        for index in range(self._count):
            if self._take(index):
                prepared = self._prepare(index)
            else:  # the helper took it: wait for it
                self._done[index].wait()
                done, error = self._outcomes[index]
                if error is not None:
                    raise error
                prepared = typing.cast(Chunk, done)
            with self._changed:  # the helper prepares the next while this one is stored
                self._wanted = index + 1
                self._changed.notify_all()
            yield prepared

    def _take(self, index: int) -> bool:
        """Take chunk `index` for the caller, unless the helper has taken it."""
        with self._changed:
            if self._next != index:
                return False
            self._next += 1
            return True

    def _help(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and self._next != self._wanted:
                    self._changed.wait()
                if self._stopped or self._next >= self._count:
                    return
                index = self._next
                self._next += 1
            try:
                self._outcomes[index] = (self._prepare(index), None)
            except BaseException as error:  # handed to the caller, which raises it
                self._outcomes[index] = (None, error)
            finally:
                self._done[index].set()

"""The loop a `db_worker` process runs: claim due rows, run them in threads, record outcomes.

Delivery is at least once. A row is claimed with a lease that a heartbeat thread
renews while the task runs; if the process dies, the lease expires and another worker
runs the task again, recording the lost attempt. A task whose side effects committed
just before its worker died can therefore run twice: make tasks idempotent.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from django_tasks import _execution, exceptions, results, signals
from django_tasks.backends.database import claims
from django_tasks.backends.database.backend import DatabaseBackend
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.tasks import find_task

logger = logging.getLogger("django_tasks")
R = TypeVar("R")
_DATABASE_DOWN = (OperationalError, InterfaceError)
FLUSH_ROWS = 100
FLUSH_SECONDS = 0.2
HEARTBEAT_RETRY_SECONDS = 1.0
RELEASE_TRIES = 5
"""Tries to hand back unstarted rows on a graceful stop (see `Worker._drain`)."""


class ForcedStop(BaseException):
    """Raised in a task running in the worker's main thread when a second signal arrives."""


def default_worker_id() -> str:
    """Return `host:pid`, unique among the workers of one database."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """How one worker process runs; see `manage.py db_worker --help`."""

    worker_id: str = dataclasses.field(default_factory=default_worker_id)
    queues: tuple[str, ...] | None = ("default",)
    """The queues served; None serves every queue."""
    batch: bool = False
    """Exit 0 once no task is due and none is running."""
    interval: float = 1.0
    """Seconds between polls when idle (PostgreSQL workers are also woken by NOTIFY)."""
    max_tasks: int | None = None
    concurrency: int = 1
    prefetch: int = 0
    """Extra rows claimed beyond the free threads, to claim in fewer statements."""
    startup_delay: bool = True


class Worker:
    """Run the tasks of one database backend until asked to stop."""

    def __init__(self, backend: DatabaseBackend, options: WorkerOptions) -> None:
        self.backend = backend
        self.options = options
        self.worker_id = options.worker_id
        self.scope = claims.Scope(
            alias=backend.db_alias(), backend_name=backend.alias, queues=options.queues
        )
        self.lease = timedelta(seconds=backend.options.lease_seconds)
        self.tasks_finished = 0
        self._stopping = threading.Event()
        self._signals = 0  # counted by a signal handler (see note_stop_signal)
        self._forced = threading.Event()
        self._wake = threading.Event()
        self._heartbeat_stop = threading.Event()
        # Bumped whenever a connection is found dead; each pool thread then drops its
        # own connections before its next task, which would otherwise meet a dead one.
        self._outages = 0
        self._thread_state = threading.local()
        self._pending: deque[DBTaskResult] = deque()
        self._unwritten: list[claims.Finished] = []
        # Outcomes taken from _unwritten by a write not yet done; both lists change
        # under _flush_lock, so an outcome is always in one of them until written.
        self._in_flight: list[claims.Finished] = []
        self._flush_lock = threading.Lock()
        # Held for the whole of a write: one at a time, and a forced flush waits for it.
        self._write_lock = threading.Lock()
        self._write_wanted = threading.Event()
        self._write_everything = False  # with _write_wanted: not only what is due
        # With concurrency 1, tasks run in the main thread: no hand-off between threads.
        self._inline = options.concurrency == 1
        # ... and with prefetch on PostgreSQL, the flusher thread writes their outcomes
        # (see _hand_off).
        self._writes_behind = (
            self._inline
            and options.prefetch > 0
            and connections[self.scope.alias].vendor == "postgresql"
        )
        self._inline_row: DBTaskResult | None = None
        self._interrupted: DBTaskResult | None = None
        # Rows may be RUNNING under this id without this process knowing: left by a
        # predecessor with the same id, or later by a claim that lost its connection.
        self._check_unknown_claims = True
        # A row whose last attempt died with its worker runs alone (see _isolate_suspect).
        self._alone: uuid.UUID | None = None
        self._claim_one = False
        self._oldest = 0.0
        self._running: dict[concurrent.futures.Future[claims.Finished], DBTaskResult] = {}
        self._pool_started: list[int] = []
        """The id of each thread the pool has started (it starts them as tasks come)."""
        self._pool = concurrent.futures.ThreadPoolExecutor(
            options.concurrency,
            thread_name_prefix="django_tasks_worker",
            initializer=self._note_pool_thread,
        )
        self._listener = _listener_for(self.scope.alias)

    @property
    def stopping(self) -> bool:
        """Tell whether the worker was asked to stop."""
        return self._signals > 0 or self._stopping.is_set()

    @property
    def forced(self) -> bool:
        """Tell whether a second signal asked the worker to stop at once."""
        return self._signals > 1 or self._forced.is_set()

    def request_stop(self) -> None:
        """Stop claiming; finish the tasks in hand, then return from `run`."""
        self._stopping.set()
        self._wake.set()

    def stop_now(self) -> None:
        """Stop at once: hand back every claimed task, running or not, and return.

        A task running in the main thread (concurrency 1) is not interrupted by this;
        `note_stop_signal` does that, from a signal handler.
        """
        self._forced.set()
        self.request_stop()

    def note_stop_signal(self) -> None:
        """Count a stop signal: the first stops gracefully, a second at once.

        Meant for a signal handler, which runs in the main thread between two bytecodes,
        maybe while that thread holds a lock: this takes none, it only counts, so the
        loops stop before they start another task. On a second signal it interrupts a
        task running in the main thread by raising `ForcedStop` there. Waits are not
        woken: the caller also calls `request_stop` or `stop_now` outside the handler.
        """
        self._signals += 1
        if (
            self._signals > 1
            and self._inline_row is not None
            and threading.current_thread() is threading.main_thread()
        ):
            self._inline_row = None  # one interruption per task, even if more signals come
            raise ForcedStop

    def _task_returned(self) -> None:
        # Called as the task function returns or raises: from then on a second signal
        # stops the worker after this attempt is recorded, instead of interrupting it.
        self._inline_row = None

    def run(self) -> None:
        """Claim and run tasks until stopped, `--batch` drains, or `--max-tasks` is reached."""
        autodiscover_modules("tasks")
        logger.info(
            "worker_started worker_id=%s backend=%s queues=%s concurrency=%d",
            self.worker_id,
            self.backend.alias,
            ",".join(self.options.queues) if self.options.queues else "*",
            self.options.concurrency,
        )
        heartbeat = threading.Thread(target=self._heartbeat, name="django_tasks_heartbeat")
        heartbeat.start()
        helpers = [heartbeat]
        if self._inline and self.options.prefetch > 0:
            flusher = threading.Thread(target=self._flusher, name="django_tasks_flusher")
            flusher.start()
            helpers.append(flusher)
        try:
            if self.options.startup_delay:
                self._wake.wait(random.uniform(0, self.options.interval))
            self._database("reclaim", self._reclaim)
            try:
                self._loop()
            except ForcedStop:
                self.stop_now()
            except Exception:
                # A bug, or an error nothing expected: keep the outcomes already known
                # and hand back the rows not started, then stop with the error.
                logger.exception("worker_failed worker_id=%s", self.worker_id)
                self.request_stop()
                try:
                    self._drain()
                except Exception:
                    logger.exception("worker_drain_failed worker_id=%s", self.worker_id)
                raise
            self._drain()
        finally:
            self._stopping.set()
            self._wake.set()
            self._heartbeat_stop.set()
            self._write_wanted.set()  # the flusher sees the stop at once
            for helper in helpers:
                helper.join()
            if not self.forced:
                self._close_pool_connections()
            self._pool.shutdown(wait=not self.forced, cancel_futures=True)
            if self._listener is not None:
                self._listener.close()
            logger.info(
                "worker_stopped worker_id=%s tasks=%d forced=%s",
                self.worker_id,
                self.tasks_finished,
                self.forced,
            )

    def _loop(self) -> None:
        while not self.stopping:
            self._collect(timeout=0)
            if self._limit_reached():
                return
            free = self.options.concurrency - len(self._running)
            claimed_nothing = False
            if free > 0 and not self._pending and not self._running_alone():
                writing = self._writes_behind and self._holds_outcomes()
                if not self._writes_behind:
                    self._flush(force=True)
                limit = 1 if self._claim_one else free + self.options.prefetch
                if self.options.max_tasks is not None:
                    left = self.options.max_tasks - self.tasks_finished - len(self._running)
                    limit = min(limit, left)
                rows = self._claim_rows(limit)
                if self._writes_behind:
                    # The last claim's outcomes were written while this claim ran; they
                    # are stored before its tasks start, so a task that kills the
                    # process cannot take the earlier results down with it.
                    self._flush(force=True)
                    if writing and not rows:
                        # What was just stored may be due already (a retry without
                        # delay), and a finishing write sends no NOTIFY: look again.
                        rows = self._claim_rows(limit)
                self._pending.extend(self._isolate_suspect(rows))
                claimed_nothing = not rows
            if self._inline:
                self._run_inline()
            while free > 0 and self._pending and not self._inline:
                if self._pending[0].id == self._alone:
                    if self._running:
                        break  # it starts once the others have finished
                    self._flush(force=True)
                self._start(self._pending.popleft())
                free -= 1
            if self._running:
                self._collect(timeout=FLUSH_SECONDS)
                self._flush()
            elif claimed_nothing:
                if self.options.batch:
                    return
                self._idle()

    def _isolate_suspect(self, rows: list[DBTaskResult]) -> list[DBTaskResult]:
        """Keep at most one row whose last attempt was lost with its worker, and run it last.

        Such a row may be what killed its worker. Run with others, it would take their
        attempts down with it each time, until they too reached `MAX_LOST_ATTEMPTS`.
        So it runs on its own: after the other rows of its claim have finished and been
        written, with nothing else claimed meanwhile. Other suspects of the same claim
        are handed back, to be claimed (and run alone) later.
        """
        suspects = [row for row in rows if claims.last_attempt_lost(row)]
        # After many attempts were lost at once (an outage longer than the lease), the
        # head of the queue is all suspects: claim one row at a time until it is not.
        self._claim_one = bool(suspects)
        if not suspects:
            return rows
        alone, *others = suspects
        if others:
            # Retried through an outage: they must not stay held while the suspect runs.
            released = self._database(
                "release", claims.release, self.scope, self.worker_id, others, retry=True
            )
            if released is None:  # stopped at once meanwhile
                self._check_unknown_claims = True
        self._alone = alone.id
        return [*(row for row in rows if row not in suspects), alone]

    def _running_alone(self) -> bool:
        if self._alone is None:
            return False
        if any(row.id == self._alone for row in (*self._pending, *self._running.values())):
            return True
        self._alone = None
        return False

    def _note_pool_thread(self) -> None:
        self._pool_started.append(threading.get_ident())

    def _close_pool_connections(self) -> None:
        """Close each pool thread's database connections: one job per thread, held by a barrier.

        As many jobs as the pool has started threads (one per `--concurrency` would start
        every thread the pool may have, which took seconds at thousands). A thread that
        has just finished a task may not count as idle yet, so the pool can start a new
        thread for a job while an older one gets none: rounds go on until every thread
        started before has closed its connections (a second round is rare, a third
        rarer still).
        """
        closed: set[int] = set()
        for _ in range(5):
            if closed.issuperset(self._pool_started):
                return
            threads = len(self._pool_started)
            barrier = threading.Barrier(threads)
            jobs = [self._pool.submit(_close_then_wait, closed, barrier) for _ in range(threads)]
            concurrent.futures.wait(jobs)

    def _limit_reached(self) -> bool:
        limit = self.options.max_tasks
        return limit is not None and self.tasks_finished >= limit

    def _claim_rows(self, limit: int) -> list[DBTaskResult]:
        rows = self._database("claim", self._claim, limit) if limit > 0 else []
        if rows is None:
            # The claim may have committed before its connection died.
            self._check_unknown_claims = True
            return []
        return rows

    def _claim(self, limit: int) -> list[DBTaskResult]:
        if self._check_unknown_claims:
            # Cleared first: the flusher thread may set it again meanwhile (_give_up).
            self._check_unknown_claims = False
            try:
                self._abandon_unknown_claims()
            except BaseException:
                self._check_unknown_claims = True
                raise
        return claims.claim(self.scope, self.worker_id, limit, self.lease)

    def _holds_outcomes(self) -> bool:
        """Tell whether finished attempts wait to be written, or are being written."""
        with self._flush_lock:
            return bool(self._unwritten or self._in_flight)

    def _abandon_unknown_claims(self) -> None:
        """Take back rows held in this worker's name that it does not know it holds.

        A claim whose connection died after its commit, or a predecessor restarted
        under the same `--worker-id`, leaves rows RUNNING under this id that this process
        never received: nothing would run them, and the heartbeat would renew their lease
        for as long as the worker lives. Each is recorded as a lost attempt, as an
        expired lease would have been.
        """
        known = {row.id for row in (*self._pending, *self._running.values())}
        with self._flush_lock:
            known |= {finished.id for finished in (*self._unwritten, *self._in_flight)}
        held = DBTaskResult.objects.using(self.scope.alias).filter(
            status=claims.RUNNING, worker_id=self.worker_id
        )
        reason = (
            f"Worker {self.worker_id} held the task without knowing it (a claim lost its "
            "connection after it committed, or the worker restarted under the same id); "
            "the attempt was lost."
        )
        limit = self.backend.options.max_lost_attempts
        for row in held:
            if row.id not in known:
                claims.abandon(self.scope, row, reason, limit, expected_lease=None)
                logger.warning(
                    "claim_abandoned id=%s worker_id=%s: held in this worker's name unknown to it",
                    row.id,
                    self.worker_id,
                )

    def _reclaim(self) -> int:
        return claims.reclaim_expired(self.scope, self.backend.options.max_lost_attempts)

    def _idle(self) -> None:
        if self._listener is not None:
            if not self._listener.wait(self.options.interval, self._wake):
                self._outages += 1
        else:
            self._wake.wait(self.options.interval)
        self._wake.clear()

    def _run_inline(self) -> None:
        """Run the claimed rows one by one in this thread, until stopped or at the limit."""
        while self._pending and not self.stopping and not self._limit_reached():
            row = self._pending.popleft()
            if row.id == self._alone:
                self._flush(force=True)
            try:
                # Until the task function returns (`_task_returned`), a second signal
                # raises ForcedStop here.
                self._inline_row = row
                finished = self._execute(row)
            except ForcedStop:
                self._interrupted = row
                raise
            finally:
                self._inline_row = None
            self._add_finished(finished)
            if self._writes_behind:
                self._hand_off(everything=not self._pending)
            else:
                self._flush()
        if not self._writes_behind and not self._pending and not self.stopping:
            self._flush(force=True)

    def _add_finished(self, finished: claims.Finished) -> None:
        with self._flush_lock:
            if not self._unwritten:
                self._oldest = time.monotonic()
            self._unwritten.append(finished)
        self.tasks_finished += 1

    def _hand_off(self, *, everything: bool = False) -> None:
        """Have the flusher thread write the waiting outcomes: once due, or `everything` now.

        `everything` at the end of a claim's rows: the worker may go idle, and the
        results should be seen at once.

        The main thread goes on with the claim's remaining tasks, and with the next
        claim's statement, while they are written: the server stores them as the worker
        works, instead of the worker waiting for it. Before the next claim's tasks start,
        `_loop` waits for the write and writes what is left, so a task that kills the
        process never takes an earlier claim's results with it. A write still under way
        when a full batch (FLUSH_ROWS) is due again is waited for too.

        PostgreSQL only: there the server's work is most of a write's time, and psycopg
        waits for it without holding the GIL; in-process drains of no-op tasks were
        20-40 % faster in each of three rounds against the code before. On SQLite (the
        writing happens in this process) and MySQL (PyMySQL is Python) the two threads
        contend for the GIL instead: no gain was measured, and more CPU per task, so the
        main thread writes.
        """
        with self._flush_lock:
            due = self._due(self._unwritten) or (everything and bool(self._unwritten))
            # A full batch waits while another is written: the worker waits with it.
            full = bool(self._in_flight) and len(self._unwritten) >= FLUSH_ROWS
        if not due:
            return
        if full:
            with self._write_lock:
                pass
        self._write_everything = self._write_everything or everything
        self._write_wanted.set()

    def _flusher(self) -> None:
        """Write finished outcomes from a thread of their own, at concurrency 1 with prefetch.

        On PostgreSQL the main thread hands them off when due (`_hand_off`): FLUSH_ROWS
        of them, or the oldest FLUSH_SECONDS old. This thread also looks every
        FLUSH_SECONDS, so a quick task followed by a long one does not stay RUNNING, its
        result unseen, until the long one ends (it would run again if the worker died
        meanwhile). A forced flush (before a suspect runs alone, and when the worker
        stops) writes in the main thread, after any write in flight.
        """
        try:
            while not self._heartbeat_stop.is_set():
                wanted = self._write_wanted.wait(FLUSH_SECONDS)
                self._write_wanted.clear()
                everything, self._write_everything = self._write_everything, False
                # Without write-behind the main thread writes between tasks; this one
                # only while a task runs.
                busy = self._writes_behind or self._inline_row is not None
                if self._unwritten and (wanted or busy):
                    try:
                        self._flush(force=everything)
                    except Exception as error:  # the outcomes are back in _unwritten
                        logger.error(
                            "flush_failed worker_id=%s error=%s: %s",
                            self.worker_id,
                            type(error).__name__,
                            _first_line(error),
                        )
        finally:
            connections.close_all()

    def _start(self, row: DBTaskResult) -> None:
        future = self._pool.submit(self._execute, row)
        self._running[future] = row

    def _collect(self, timeout: float) -> None:
        if not self._running:
            return
        done, _ = concurrent.futures.wait(
            self._running, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        for future in done:
            self._running.pop(future)
            self._add_finished(future.result())

    def _drain(self) -> None:
        """After a stop request: hand back unstarted rows, wait for the running ones.

        The hand-back is tried up to `RELEASE_TRIES` times, 0.2 s apart and doubling
        (about 3 s in all), unless a second signal stops the worker at once: left held,
        each row waits for its lease to expire and comes back with a lost attempt it
        never made. On MariaDB it can lose a deadlock (error 1213) to the worker's own
        lease renewal, which locks the same rows through another index. Unlike finished
        outcomes, it is not retried for as long as it takes: while the database is down,
        the running tasks' outcomes must not wait behind it.
        """
        if self._pending:
            delay = 0.2
            for _ in range(RELEASE_TRIES):
                released = self._database(
                    "release", claims.release, self.scope, self.worker_id, self._pending
                )
                if released is not None or self._forced.wait(delay):
                    break
                delay *= 2
            self._pending.clear()
        while self._running and not self.forced:
            self._collect(timeout=0.2)
            self._flush()
        self._collect(timeout=0)  # stopped at once: attempts that ended meanwhile are kept
        self._flush(force=True)
        interrupted = [self._interrupted] if self._interrupted else []
        if self.forced and (self._running or interrupted):
            for row in [*self._running.values(), *interrupted]:
                reason = (
                    f"Worker {self.worker_id} was stopped at once by a second signal "
                    "while the task ran; the attempt was abandoned."
                )
                self._database(
                    "abandon",
                    claims.abandon,
                    self.scope,
                    row,
                    reason,
                    self.backend.options.max_lost_attempts,
                    expected_lease=None,
                )

    def _execute(self, row: DBTaskResult) -> claims.Finished:
        """Run one claimed row in a pool thread; return its outcome, to be written in a batch."""
        if getattr(self._thread_state, "outages", 0) != self._outages:
            self._thread_state.outages = self._outages
            connections.close_all()
        start = timezone.now()
        started_at = row.started_at if row.worker_ids else start
        try:
            task = find_task(row.task_path)
            running = self.backend.result_from_row(
                row, task, decode=False, started_at=started_at, last_attempted_at=start
            )
        except Exception as raised:
            # A module of an installed app can raise anything while it is imported: that
            # fails this row, never the worker.
            error = _unrunnable(row, raised)
            logger.error("task_unrunnable id=%s task=%s error=%s", row.id, row.task_path, error)
            failure = dataclasses.asdict(results.TaskError.from_exception(error))
            errors = [*row.errors, failure]
            now = timezone.now()
            return self._finished(row, start, started_at, "FAILED", None, errors, now)
        signals.send_started(type(self.backend), running)
        try:
            outcome = _execution.execute(
                self.backend,
                running,
                row.args_kwargs,
                propagate=(ForcedStop,),
                on_return=self._task_returned if self._inline else None,
            )
        finally:
            _tidy_connections()
        result, data = outcome.result, outcome.return_data
        errors = [dataclasses.asdict(error) for error in result.errors]
        returned = data.decode() if isinstance(data, bytes) else data
        status, retry_at = result.status, outcome.retry_at
        # The row keeps the finish time the `task_finished` receivers saw.
        finished_at = None if retry_at else result.finished_at
        return self._finished(
            row, start, started_at, status, returned, errors, finished_at, retry_at
        )

    def _finished(
        self,
        row: DBTaskResult,
        start: datetime,
        started_at: datetime | None,
        status: str,
        return_value: str | None,
        errors: list[dict[str, Any]],
        finished_at: datetime | None,
        retry_at: datetime | None = None,
    ) -> claims.Finished:
        return claims.Finished(
            id=row.id,
            status=status,
            ready_at=retry_at or row.ready_at,
            started_at=started_at,
            last_attempted_at=start,
            finished_at=finished_at,
            return_value=return_value,
            errors=errors,
            worker_ids=[*row.worker_ids, self.worker_id],
            claimed_at=row.last_attempted_at or start,
        )

    def _due(self, unwritten: list[claims.Finished]) -> bool:
        return bool(unwritten) and (
            len(unwritten) >= FLUSH_ROWS or time.monotonic() - self._oldest >= FLUSH_SECONDS
        )

    def _flush(self, *, force: bool = False) -> None:
        """Write finished attempts in one statement: when asked, or once 100 or 0.2 s old.

        Until written, their rows stay RUNNING under this worker's renewed lease; if the
        worker dies first, the tasks run again elsewhere, as at-least-once allows. Runs
        after any write in flight; outcomes added meanwhile wait for the next flush.
        """
        with self._write_lock:
            with self._flush_lock:
                unwritten = self._unwritten
                if not (force and unwritten) and not self._due(unwritten):
                    return
                self._unwritten, self._in_flight = [], unwritten
                oldest = self._oldest
            kept: int | None = None
            try:
                kept = self._write(unwritten)
            finally:
                with self._flush_lock:
                    self._in_flight = []
                    if kept is None:  # failed, or stopped at once: tried again later
                        self._unwritten[:0] = unwritten
                        self._oldest = oldest
            if kept is None:
                return
        if kept < len(unwritten):
            logger.warning(
                "task_lease_lost worker_id=%s lost=%d: another worker took tasks back before "
                "their attempts were written; those outcomes were not recorded",
                self.worker_id,
                len(unwritten) - kept,
            )

    def _write(
        self, outcomes: list[claims.Finished], *, as_failure: bool = False, pinged: bool = False
    ) -> int | None:
        """Write finished attempts; return how many rows were still ours (None: stopped).

        A database that is down is waited for, so no outcome is lost. A database that
        is up but refuses the statement (an outcome too large for MySQL's
        `max_allowed_packet`, a value a column rejects) must not stop the worker for
        good: the outcomes are then written one by one, and one refused alone is
        recorded as FAILED with the reason instead of its result. If even that is
        refused, the attempt is recorded as lost (`_give_up`), so the row is not held.
        An error from outside the database (a value the driver cannot encode) is a
        refusal at once: trying again cannot help.

        A statement counts as refused only when it fails right after the database
        answered a ping on the same connection. The backoff wait comes before the ping,
        never between ping and statement: a connection dropped while the worker waits
        (an outage, a `KILL`, `pg_terminate_backend`) is then found by the ping and
        replaced, instead of being taken for a refusal of the outcome. `pinged` says the
        connection answered just before this call.
        """
        delay = 0.2
        refused = 0
        since = time.monotonic()
        while True:
            try:
                return claims.finish_many(self.scope, self.worker_id, outcomes)
            except Exception as error:
                if isinstance(error, DatabaseError):
                    _close_connection(self.scope.alias)
                    self._outages += 1
                    passing = _passing(error) and time.monotonic() - since < PASSING_LIMIT_SECONDS
                    refused = refused + 1 if pinged and not passing else 0
                else:
                    logger.error(
                        "task_outcome_write_failed worker_id=%s error=%s: %s",
                        self.worker_id,
                        type(error).__name__,
                        _first_line(error),
                    )
                    refused = _REFUSALS
                if refused >= _REFUSALS and len(outcomes) > 1:
                    return self._write_each(outcomes)  # the others are written
                if refused >= _REFUSALS:
                    # Refused each time right after the database answered: not a passing
                    # fault (a dropped connection, a deadlock), so give up on the result.
                    logger.error(
                        "task_outcome_unstorable id=%s worker_id=%s error=%s%s",
                        outcomes[0].id,
                        self.worker_id,
                        _first_line(error),
                        ": recorded as a lost attempt" if as_failure else ": recorded as FAILED",
                    )
                    if as_failure:
                        return self._give_up(outcomes[0], error)
                    return self._write([_unstorable(outcomes[0], error)], as_failure=True)
                logger.warning(
                    "%s action=finish worker_id=%s error=%s retry_in=%.1fs",
                    _fault_token(error),
                    self.worker_id,
                    _first_line(error),
                    delay,
                )
                if self._forced.wait(delay):
                    return None
                delay = min(delay * 2, 10.0)
                pinged = self._database("ping", _ping, self.scope.alias) is not None
                if pinged and len(outcomes) > 1:
                    return self._write_each(outcomes)

    def _write_each(self, outcomes: list[claims.Finished]) -> int | None:
        """Write outcomes one by one, right after the database answered: one refused
        alone is then the one at fault, and only it is recorded as unstorable."""
        kept = [self._write([outcome], pinged=True) for outcome in outcomes]
        return None if None in kept else sum(k or 0 for k in kept)

    def _give_up(self, outcome: claims.Finished, error: BaseException) -> int:
        """Record an attempt whose outcome no write could store as lost; return 0.

        Left RUNNING, the row would be renewed by this worker's heartbeat for as long as
        it lives, and never run or finish. As a lost attempt it is READY again (or
        FAILED, at `MAX_LOST_ATTEMPTS`), like one whose worker died.
        """
        reason = (
            f"Worker {self.worker_id} could not store the outcome of the attempt "
            f"({type(error).__name__}: {_first_line(error)[:500]}); the attempt was lost."
        )

        def abandon() -> bool:
            row = (
                DBTaskResult.objects.using(self.scope.alias)
                .filter(id=outcome.id, status=claims.RUNNING, worker_id=self.worker_id)
                .filter(last_attempted_at=outcome.claimed_at)
                .first()
            )
            if row is not None:  # None: no longer this claim's, nothing to record
                limit = self.backend.options.max_lost_attempts
                claims.abandon(self.scope, row, reason, limit, expected_lease=None)
            return True

        problem = "the database was unavailable"
        try:
            if self._database("abandon", abandon) is not None:
                return 0
        except Exception as failure:
            problem = _first_line(failure)
        # Even that failed: the next claim takes back whatever this worker holds
        # without knowing it.
        logger.error(
            "task_outcome_unstorable id=%s worker_id=%s error=%s: left to the next claim",
            outcome.id,
            self.worker_id,
            problem,
        )
        self._check_unknown_claims = True
        return 0

    def _heartbeat(self) -> None:
        """Renew this worker's leases and take back expired ones, until the worker stops.

        Renewal runs every third of the lease, and a second after a failed round. A
        failure that is not a lost connection (a read-only transaction during a
        failover, a lock timeout, a trigger) is logged as `heartbeat_failed` and tried
        again the same way: a heartbeat that stopped would let every lease of this
        worker expire while its tasks run, and they would run again elsewhere.
        """
        period = self.lease.total_seconds() / 3
        wait = period
        try:
            while not self._heartbeat_stop.wait(wait):
                wait = min(HEARTBEAT_RETRY_SECONDS, period)
                try:
                    renewed = self._database(
                        "renew", claims.renew, self.scope, self.worker_id, self.lease
                    )
                    if renewed is None:
                        continue
                    self._database("reclaim", self._reclaim)
                except Exception as error:
                    logger.error(
                        "heartbeat_failed worker_id=%s error=%s: %s retry_in=%.1fs",
                        self.worker_id,
                        type(error).__name__,
                        _first_line(error),
                        wait,
                    )
                    continue
                wait = period
        finally:
            connections.close_all()

    def _database(
        self, action: str, call: Callable[..., R], *args: Any, retry: bool = False, **kwargs: Any
    ) -> R | None:
        """Run a database call; on a lost connection, reconnect with backoff.

        Claims and renewals give up for this round (the loop tries again); a finished
        attempt (`retry=True`) is retried until it is written, so no outcome is lost.
        """
        delay = 0.2
        while True:
            try:
                return call(*args, **kwargs)
            except _DATABASE_DOWN as error:
                self._outages += 1
                logger.warning(
                    "%s action=%s worker_id=%s error=%s retry_in=%.1fs",
                    _fault_token(error),
                    action,
                    self.worker_id,
                    _first_line(error),
                    delay,
                )
                _close_connection(self.scope.alias)
                if self._forced.wait(delay) or not retry:
                    return None
                delay = min(delay * 2, 10.0)
            except DatabaseError:
                _close_connection(self.scope.alias)
                raise


_REFUSALS = 3


def _unstorable(outcome: claims.Finished, error: Exception) -> claims.Finished:
    """Return `outcome` as a FAILED attempt saying why its result could not be stored."""
    failure = results.TaskError.from_exception(
        exceptions.InvalidTask(
            "The outcome of the attempt could not be stored, so it is recorded as failed: "
            f"{type(error).__name__}: {_first_line(error)}"
        )
    )
    # The attempt's own error may be what made the write too large (an exception
    # message of many megabytes): keep the start and the end of each traceback.
    errors = [
        {**error, "traceback": _shortened(error.get("traceback") or "")} for error in outcome.errors
    ]
    return dataclasses.replace(
        outcome,
        status=results.TaskResultStatus.FAILED,
        return_value=None,
        finished_at=outcome.finished_at or timezone.now(),
        errors=[*errors, dataclasses.asdict(failure)],
    )


_KEPT_TRACEBACK = 32_000


def _shortened(text: str) -> str:
    """Return `text`, or its first and last 16,000 characters with what was cut said."""
    if len(text) <= _KEPT_TRACEBACK:
        return text
    half = _KEPT_TRACEBACK // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half:,} characters cut ...]\n{text[-half:]}"


# Errors that say the statement met other work or a server in transition, not that the
# outcome itself is refused: lock and statement timeouts, deadlocks, serialization
# failures, a read-only or full or stopping server. A write meeting one is retried, not
# counted as refused, for up to PASSING_LIMIT_SECONDS: past that, one that repeats (a
# statement timeout the outcome itself causes) counts like any other.
_PASSING_SQLSTATES = frozenset(
    {"40001", "40P01", "55P03", "57014", "25006", "57P01", "57P02", "57P03"}
    | {"53000", "53100", "53200", "53300", "53400"}
)
_PASSING_MYSQL_CODES = frozenset({1021, 1047, 1053, 1205, 1213, 1290, 1317, 1792, 1836, 1969})
_PASSING_SQLITE_TEXT = (
    "database is locked",
    "database table is locked",
    "readonly database",
    "database or disk is full",
)
PASSING_LIMIT_SECONDS = 300.0


def _passing(error: DatabaseError) -> bool:
    """Tell whether `error` is one that goes away by itself (see `_PASSING_SQLSTATES`)."""
    return _one_of(error, _PASSING_SQLSTATES, _PASSING_MYSQL_CODES, _PASSING_SQLITE_TEXT)


def _one_of(
    error: BaseException,
    sqlstates: frozenset[str],
    mysql_codes: frozenset[int],
    sqlite_text: tuple[str, ...],
) -> bool:
    """Tell whether `error` is one of these: by the driver's SQLSTATE (PostgreSQL), the
    server's error number (MySQL, MariaDB), or else a phrase of its message (SQLite)."""
    cause = error.__cause__
    code = cause.args[0] if cause is not None and cause.args else None
    if isinstance(code, int):
        return code in mysql_codes
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if sqlstate is not None:
        return sqlstate in sqlstates
    text = str(error).lower()
    return any(phrase in text for phrase in sqlite_text)


# The passing errors that mean the statement met other transactions' locks: the
# database is up and answering, so they are logged as a conflict, not an outage.
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
_CONFLICT_MYSQL_CODES = frozenset({1205, 1213})
_CONFLICT_SQLITE_TEXT = ("database is locked", "database table is locked")


def _conflict(error: BaseException) -> bool:
    """Tell whether `error` is a deadlock, a lock wait that timed out, or a serialization
    failure (SQLite: "database is locked"), rather than a lost or refusing server."""
    return _one_of(error, _CONFLICT_SQLSTATES, _CONFLICT_MYSQL_CODES, _CONFLICT_SQLITE_TEXT)


def _fault_token(error: BaseException) -> str:
    """Return the log token for a database error met by the worker's own statements."""
    return "database_conflict" if _conflict(error) else "database_unavailable"


def _close_then_wait(closed: set[int], barrier: threading.Barrier) -> None:
    """Close this pool thread's connections, then hold it until the others have theirs."""
    connections.close_all()
    closed.add(threading.get_ident())
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=5)


def _ping(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unrunnable(row: DBTaskResult, error: Exception) -> exceptions.InvalidTask:
    if isinstance(error, exceptions.InvalidTask):
        return error
    return exceptions.InvalidTask(
        f"Task '{row.task_path}' cannot be run: finding it raised {type(error).__name__}: {error}",
        task_path=row.task_path,
    )


def _close_connection(alias: str) -> None:
    with contextlib.suppress(DatabaseError):
        connections[alias].close()


def _tidy_connections() -> None:
    """Close this thread's connections that a task left broken, and only those.

    A task may return inside an atomic block it never left, or with autocommit turned
    off: the worker's next statements on this connection would then run in that
    transaction and never commit. Closing rolls it back; the next query reconnects.
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        left_open = connection.in_atomic_block or connection.closed_in_transaction
        if (
            left_open
            or not connection.get_autocommit()
            or (connection.errors_occurred and not connection.is_usable())
        ):
            # Out of the atomic block first: closed inside one, Django would keep the
            # dead connection for the block's exit, which never comes.
            connection.in_atomic_block = False
            connection.closed_in_transaction = False
            with contextlib.suppress(DatabaseError):
                connection.close()
            connection.connection = None


class _PostgresListener:
    """A separate autocommit connection that LISTENs for the NOTIFY sent on enqueue."""

    channel = "django_tasks"

    def __init__(self, alias: str) -> None:
        self._wrapper = connections.create_connection(alias)
        self._ready = False

    def _connect(self) -> None:
        self._wrapper.close()
        self._wrapper.ensure_connection()
        self._wrapper.set_autocommit(True)
        self._wrapper.connection.execute(f"LISTEN {self.channel}")
        self._ready = True

    def wait(self, timeout: float, wake: threading.Event) -> bool:
        """Return when a task is enqueued, `wake` is set, or `timeout` seconds pass.

        Return False if the listening connection was lost (it reconnects next time).
        """
        deadline = time.monotonic() + timeout
        try:
            if not self._ready:
                # A task enqueued before LISTEN took effect sent its NOTIFY to nobody:
                # return at once, so the worker claims again before it waits.
                self._connect()
                return True
            while not wake.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                notifies = self._wrapper.connection.notifies
                for _ in notifies(timeout=min(remaining, 0.25), stop_after=1):
                    return True
        except Exception as error:  # the next poll finds the tasks anyway
            logger.warning("listen_failed error=%s", _first_line(error))
            self._ready = False
            wake.wait(max(0.0, deadline - time.monotonic()))
            return False
        return True

    def close(self) -> None:
        """Close the listening connection."""
        with contextlib.suppress(Exception):
            self._wrapper.close()


def _listener_for(alias: str) -> _PostgresListener | None:
    if connections[alias].vendor != "postgresql":
        return None
    return _PostgresListener(alias)

"""`manage.py db_worker`: run the tasks of a database backend until stopped."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME
from django_tasks.backends.database.management import database_backend
from django_tasks.backends.database.worker import Worker, WorkerOptions, default_worker_id

logger = logging.getLogger("django_tasks")
_VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO}


MAX_INTERVAL_SECONDS = 86_400.0
"""The longest idle poll interval: a day (NaN, infinity or more would never poll)."""
MAX_WORKER_ID_LENGTH = 255
"""As long as the task table's `worker_id` column."""


def _interval(value: str) -> float:
    """Parse `--interval`: seconds, above 0 and at most a day."""
    number = float(value)
    if not 0 < number <= MAX_INTERVAL_SECONDS:  # False for NaN too
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 and at most {MAX_INTERVAL_SECONDS:g}, not {value}"
        )
    return number


def _worker_id(value: str) -> str:
    """Parse `--worker-id`: text that fits the task table's column."""
    if not value or len(value) > MAX_WORKER_ID_LENGTH:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {MAX_WORKER_ID_LENGTH} characters long (got {len(value)})"
        )
    return value


class Command(BaseCommand):
    """Run tasks from the database until SIGTERM or SIGINT."""

    help = (
        "Run tasks of a database task backend. SIGTERM or SIGINT stops claiming, lets the "
        "running tasks finish and exits 0; a second signal hands the running tasks back "
        "to other workers and exits at once with status 1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the worker's options."""
        parser.add_argument(
            "--queue-name",
            action="append",
            dest="queue_names",
            help=f"A queue to serve; repeat for several, '*' for all (default: "
            f"{DEFAULT_TASK_QUEUE_NAME}).",
        )
        parser.add_argument(
            "--backend",
            default=DEFAULT_TASK_BACKEND_ALIAS,
            help="The alias in TASKS of the database backend to serve (default: default).",
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Exit 0 once no task is due and none is running.",
        )
        parser.add_argument(
            "--interval",
            type=_interval,
            default=1.0,
            help="Seconds between polls while idle (default: 1). PostgreSQL workers are "
            "also woken at once by the NOTIFY sent on enqueue.",
        )
        parser.add_argument(
            "--max-tasks", type=int, default=None, help="Exit 0 after running this many tasks."
        )
        parser.add_argument(
            "--worker-id",
            type=_worker_id,
            default=None,
            help="This worker's id in results and logs (default: host:pid).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=1,
            help="Tasks run at once, each in its own thread (default: 1).",
        )
        parser.add_argument(
            "--prefetch",
            type=int,
            default=0,
            help="Extra tasks claimed beyond the free threads, so claims take fewer "
            "statements (default: 0). Claimed tasks wait in this worker.",
        )
        parser.add_argument(
            "--startup-delay",
            action=argparse_boolean(),
            default=True,
            help="Wait a random fraction of --interval before the first claim, so many "
            "workers started together spread out (default: on).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the worker; exit 0 after a graceful stop, 1 after a forced one."""
        self._configure_logging(options["verbosity"])
        backend = database_backend(options["backend"], "db_worker")
        worker = Worker(backend, self._worker_options(options))
        with stop_on_signals(worker):
            worker.run()
        if worker.forced:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)

    def _worker_options(self, options: dict[str, Any]) -> WorkerOptions:
        names = options["queue_names"] or [DEFAULT_TASK_QUEUE_NAME]
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        if options["max_tasks"] is not None and options["max_tasks"] < 1:
            raise CommandError("--max-tasks must be at least 1.")
        if options["prefetch"] < 0:
            raise CommandError("--prefetch cannot be negative.")
        return WorkerOptions(
            worker_id=options["worker_id"] or default_worker_id(),
            queues=None if "*" in names else tuple(dict.fromkeys(names)),
            batch=options["batch"],
            interval=options["interval"],
            max_tasks=options["max_tasks"],
            concurrency=options["concurrency"],
            prefetch=options["prefetch"],
            startup_delay=options["startup_delay"],
        )

    def _configure_logging(self, verbosity: int) -> None:
        logger.setLevel(_VERBOSITY_LEVELS.get(verbosity, logging.DEBUG))
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
            logger.propagate = False


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELAY_JOIN_SECONDS = 5.0


@contextlib.contextmanager
def stop_on_signals(worker: Worker) -> Iterator[None]:
    """Stop `worker` on SIGTERM or SIGINT: gracefully on the first, at once on the second.

    Python runs a signal handler in the main thread between two bytecodes, possibly
    while that thread holds a lock: inside `threading.Event.wait`, or while writing a
    log line. A handler that took the same lock (to set an Event, or to log) would wait
    for itself forever. So the handler only counts the signal on the worker (which its
    loops check before each task; a second signal also interrupts a task running in
    the main thread, which only that thread can do) and writes the signal's number to a
    pipe. A thread reading the pipe logs, and wakes the worker with `request_stop` or
    `stop_now`. The previous handlers are put back on exit.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def on_signal(number: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(write_end, bytes((number,)))
        worker.note_stop_signal()

    def relay() -> None:
        handled = 0
        while True:
            for number in os.read(read_end, 64):
                if number == 0:
                    return
                handled += 1
                name = signal.Signals(number).name
                if handled == 1:
                    logger.warning("worker_stopping signal=%s graceful=true", name)
                    worker.request_stop()
                else:
                    logger.warning("worker_stopping signal=%s graceful=false", name)
                    worker.stop_now()

    thread = threading.Thread(target=relay, name="django_tasks_signals", daemon=True)
    previous: dict[signal.Signals, Any] = {}
    try:
        for stop_signal in STOP_SIGNALS:
            previous[stop_signal] = signal.signal(stop_signal, on_signal)
        thread.start()  # signals received before this wait in the pipe
        yield
    finally:
        relaying = False
        if thread.ident is not None:
            with contextlib.suppress(OSError):
                os.write(write_end, b"\0")  # the relay handles what came before, then returns
            # The worker has stopped by now, so the relay has at most a log line to write;
            # a log handler stuck on a full pipe must not keep the process from exiting.
            thread.join(RELAY_JOIN_SECONDS)
            relaying = thread.is_alive()
        for stop_signal, handler in previous.items():
            # None: the handler was not installed from Python; the default stands in.
            signal.signal(stop_signal, signal.SIG_DFL if handler is None else handler)
        if not relaying:  # a relay still reading keeps its pipe; the process exit closes it
            os.close(read_end)
            os.close(write_end)


def argparse_boolean() -> Any:
    """Return argparse's --flag/--no-flag action."""
    import argparse

    return argparse.BooleanOptionalAction

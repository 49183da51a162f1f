"""`manage.py db_worker`: run the tasks of a database backend until stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME
from django_tasks.backends.database.management import database_backend
from django_tasks.backends.database.worker import Worker, WorkerOptions, default_worker_id

logger = logging.getLogger("django_tasks")
_VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO}


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


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
            type=_positive_float,
            default=1.0,
            help="Seconds between polls while idle (default: 1). PostgreSQL workers are "
            "also woken at once by the NOTIFY sent on enqueue.",
        )
        parser.add_argument(
            "--max-tasks", type=int, default=None, help="Exit 0 after running this many tasks."
        )
        parser.add_argument(
            "--worker-id",
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
        self._install_signal_handlers(worker)
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

    def _install_signal_handlers(self, worker: Worker) -> None:
        def on_signal(number: int, frame: FrameType | None) -> None:
            name = signal.Signals(number).name
            if not worker.stopping:
                logger.warning("worker_stopping signal=%s graceful=true", name)
                worker.request_stop()
            else:
                logger.warning("worker_stopping signal=%s graceful=false", name)
                worker.stop_now()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def argparse_boolean() -> Any:
    """Return argparse's --flag/--no-flag action."""
    import argparse

    return argparse.BooleanOptionalAction

"""`manage.py prune_db_task_results`: delete old finished task results."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_tasks.backends.database.management import database_backend
from django_tasks.results import TaskResultStatus

FINISHED = [TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED]


MAX_AGE_DAYS = 36_525
"""A hundred years: older than any result, and well inside what a `timedelta` holds."""


class Command(BaseCommand):
    """Delete finished results; READY and RUNNING tasks are never touched."""

    help = (
        "Delete finished (SUCCESSFUL or FAILED) task results of a database backend, "
        "optionally only of some queues, one status, or older than some days."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the filters."""
        parser.add_argument(
            "--backend", default="default", help="Alias in TASKS (default: default)."
        )
        parser.add_argument(
            "--queue-name", action="append", dest="queue_names", help="Only this queue; repeatable."
        )
        parser.add_argument(
            "--status",
            choices=[status.value for status in FINISHED],
            help="Only results with this status (default: both).",
        )
        parser.add_argument(
            "--min-age-days",
            type=float,
            default=0,
            help="Only results that finished at least this many days ago (default: 0).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print how many would be deleted; delete none."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Delete, or count with --dry-run, the matching results."""
        backend = database_backend(options["backend"], "prune_db_task_results")
        if not 0 <= options["min_age_days"] <= MAX_AGE_DAYS:  # False for NaN too
            raise CommandError(
                f"--min-age-days must be a number of days from 0 to {MAX_AGE_DAYS:,}, "
                f"not {options['min_age_days']}."
            )
        rows = backend.model.objects.using(backend.db_alias()).filter(
            backend_name=backend.alias,
            status__in=[options["status"]] if options["status"] else FINISHED,
            finished_at__lte=timezone.now() - timedelta(days=options["min_age_days"]),
        )
        if options["queue_names"]:
            rows = rows.filter(queue_name__in=options["queue_names"])
        if options["dry_run"]:
            self.stdout.write(f"Would delete {rows.count()} task result(s).")
            return
        deleted, _ = rows.delete()
        self.stdout.write(f"Deleted {deleted} task result(s).")

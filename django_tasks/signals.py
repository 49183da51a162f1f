"""Signals sent as tasks move through their life; the sender is the backend class.

Every signal passes `task_result`, the result as it stands at that moment. On Django 6.0
and later `task_enqueued`, `task_started` and `task_finished` ARE the signals of
`django.tasks.signals`, so a receiver connected to either hears the tasks of both (and
Django's own receivers log our tasks on the `django.tasks` logger too).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import Signal, receiver

from django_tasks import results

logger = logging.getLogger("django_tasks")


def _shared(name: str) -> Signal:
    """Return `django.tasks.signals.<name>` on Django 6+, or a new signal on Django 5.2."""
    try:
        from django.tasks import signals as django_signals
    except ImportError:
        return Signal()
    signal: Signal = getattr(django_signals, name)
    return signal


# `task_started`, `task_finished` and `task_retried` are sent with `send_robust`: a
# receiver that raises cannot change a task's outcome, nor stop a worker with finished
# outcomes still to write. Django logs its exception, with the traceback, on the
# `django.dispatch` logger, and the other receivers still run.
task_enqueued = _shared("task_enqueued")
"""Sent once a task is enqueued (after commit, for `enqueue_on_commit`)."""
task_started = _shared("task_started")
"""Sent when a worker starts an attempt of a task."""
task_finished = _shared("task_finished")
"""Sent when a task ends, whether it failed or succeeded."""
task_retried = Signal()
"""Sent instead of `task_finished` when a failed attempt will be tried again.

Receivers get `task_result` (READY, the attempt's error last in `errors`) and
`retry_at`, the earliest time of the next attempt.
"""


@receiver(setting_changed)
def _reset_backends(*, setting: str, **kwargs: Any) -> None:
    if setting == "TASKS":
        from django_tasks import task_backends

        task_backends.reset()


def send_enqueued(sender: type, task_result: results.TaskResult[Any]) -> None:
    """Send `task_enqueued` and log it.

    Logged here rather than by a receiver, so that `send` stays free when nothing
    listens: bulk enqueues send it once per task.
    """
    task_enqueued.send(sender, task_result=task_result)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "task_enqueued id=%s task=%s backend=%s queue=%s",
            task_result.id,
            task_result.task.module_path,
            task_result.backend,
            task_result.task.queue_name,
        )


def send_enqueued_many(sender: type, task_results: list[results.TaskResult[Any]]) -> None:
    """Send `task_enqueued` for each result, as `send_enqueued`; nothing when no one listens."""
    if task_enqueued.has_listeners(sender) or logger.isEnabledFor(logging.DEBUG):
        for task_result in task_results:
            send_enqueued(sender, task_result)


def send_started(sender: type, task_result: results.TaskResult[Any]) -> None:
    """Log the start of an attempt, then send `task_started` (robustly).

    Logged here rather than by a receiver of the library's own: Django's `send_robust`
    returns at once when a signal has no receivers, so a worker whose project listens to
    none pays nothing for a signal it sends twice per task (it was a tenth of the
    worker's time per task when the library's logging receivers made every send a full
    dispatch).
    """
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "task_started id=%s task=%s attempt=%d",
            task_result.id,
            task_result.task.module_path,
            task_result.attempts,
        )
    task_started.send_robust(sender, task_result=task_result)


def send_finished(sender: type, task_result: results.TaskResult[Any]) -> None:
    """Log the end of a task (an error when it failed), then send `task_finished`."""
    failed = task_result.status == results.TaskResultStatus.FAILED
    level = logging.ERROR if failed else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "task_finished id=%s task=%s status=%s attempt=%d%s",
            task_result.id,
            task_result.task.module_path,
            task_result.status,
            task_result.attempts,
            f" error={task_result.errors[-1].exception_class_path}"
            if failed and task_result.errors
            else "",
        )
    task_finished.send_robust(sender, task_result=task_result)


def send_retried(sender: type, task_result: results.TaskResult[Any], retry_at: Any) -> None:
    """Log a failed attempt that will be tried again, then send `task_retried`."""
    if logger.isEnabledFor(logging.WARNING):
        logger.warning(
            "task_retried id=%s task=%s attempt=%d error=%s retry_at=%s",
            task_result.id,
            task_result.task.module_path,
            task_result.attempts,
            task_result.errors[-1].exception_class_path if task_result.errors else "-",
            retry_at.isoformat(),
        )
    task_retried.send_robust(sender, task_result=task_result, retry_at=retry_at)

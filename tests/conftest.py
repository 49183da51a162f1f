"""Shared fixtures: backends configured per test, and a signal recorder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

import django_tasks
from django_tasks import signals

IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
DUMMY = "django_tasks.backends.dummy.DummyBackend"
DATABASE = "django_tasks.backends.database.DatabaseBackend"


def drain(backend: Any, **options: Any) -> Any:
    """Run a real worker in this process until no task of `backend` is due; return it."""
    from django_tasks.backends.database.worker import Worker, WorkerOptions

    options = {"queues": None, "batch": True, "startup_delay": False, **options}
    worker = Worker(backend, WorkerOptions(**options))
    worker.run()
    return worker


def tasks_setting(backend: str, **extra: Any) -> dict[str, Any]:
    """Return a TASKS setting with `backend` as default and a `reports` queue."""
    return {
        "default": {"BACKEND": backend, "QUEUES": ["default", "reports"], **extra},
    }


@pytest.fixture
def immediate() -> Iterator[django_tasks.BaseTaskBackend]:
    with override_settings(TASKS=tasks_setting(IMMEDIATE)):
        yield django_tasks.task_backends["default"]


@pytest.fixture
def dummy() -> Iterator[django_tasks.BaseTaskBackend]:
    with override_settings(TASKS=tasks_setting(DUMMY)):
        yield django_tasks.task_backends["default"]


class SignalLog:
    """Record (signal name, status) for every task signal sent while it is connected."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, type]] = []

    def receiver(self, name: str) -> Any:
        def receive(sender: type, task_result: django_tasks.TaskResult[Any], **kwargs: Any) -> None:
            self.events.append((name, str(task_result.status), sender))

        return receive


@pytest.fixture
def signal_log() -> Iterator[SignalLog]:
    log = SignalLog()
    receivers = {
        signals.task_enqueued: log.receiver("enqueued"),
        signals.task_started: log.receiver("started"),
        signals.task_finished: log.receiver("finished"),
        signals.task_retried: log.receiver("retried"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    yield log
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)

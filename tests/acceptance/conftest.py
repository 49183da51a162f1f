"""Real `db_worker` processes, started and signalled from the tests, on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "tests" / "output"


def database_url() -> str:
    """Return a DATABASE_URL for the test database this session created."""
    db = connection.settings_dict
    vendor = connection.vendor
    if vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[vendor]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"{scheme}://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def insert_row(task_path: str, args_kwargs: str) -> uuid.UUID:
    """Insert a READY row by hand, as a corrupt or hostile writer could."""
    from django_tasks.backends.database.models import DBTaskResult

    now = timezone.now()
    return DBTaskResult.objects.create(
        task_path=task_path,
        backend_name="database",
        queue_name="default",
        ready_at=now,
        enqueued_at=now,
        args_kwargs=args_kwargs,
    ).id


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"Timed out after {timeout}s waiting for {what}")


class WorkerProcess:
    """One `db_worker` process, its log file, and ways to signal it."""

    def __init__(self, env: dict[str, str], log: Path, *arguments: str) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "db_worker", "--backend", "database", *arguments],
            env=env,
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.flush()

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()


@pytest.fixture
def start_worker(request, transactional_db) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `db_worker` processes on the test database; kill any left at the end."""
    folder = OUTPUT / request.node.name.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TASKS_LEASE_SECONDS": "1.5",
    }
    started: list[WorkerProcess] = []

    def start(*arguments: str, worker_id: str | None = None) -> WorkerProcess:
        name = worker_id or f"worker-{len(started) + 1}"
        worker = WorkerProcess(
            env, folder / f"{name}.log", "--worker-id", name, "--no-startup-delay", *arguments
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()

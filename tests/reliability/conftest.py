"""Fixtures of the reliability suite: a fleet of worker processes, the plan, the report.

Every process a test starts is killed at the end (after a SIGCONT, in case it was
stopped), and a PostgreSQL server a test restarts is started again whatever happens.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Count
from django.utils import timezone

from django_tasks import TaskResultStatus
from django_tasks.backends.database.models import DBTaskResult
from tests.acceptance.conftest import OUTPUT, WorkerProcess, database_url
from tests.models import Run
from tests.reliability import Plan, current_plan

WORKER_LOST = "django_tasks.exceptions.WorkerLost"
FINISHED = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
APPLICATION_PREFIX = "reliability-"
"""Worker connections to PostgreSQL carry `reliability-<worker id>` as application_name."""


def database_name() -> str:
    """Return `sqlite`, `postgresql` or `mariadb` (or `mysql`) for the test database."""
    if connection.vendor == "mysql":
        return "mariadb" if connection.mysql_is_mariadb else "mysql"
    return connection.vendor


def answering(query: Callable[[], Any]) -> Any:
    """Run `query` on this process's connection; on a dead one, drop it and return None.

    Conditions polled while the server restarts or connections are killed use this, so
    the test itself rides out the fault its workers are meant to survive.
    """
    try:
        return query()
    except (OperationalError, InterfaceError):
        connection.close()
        return None


def wait_until_finished(fleet: Fleet, timeout: float) -> None:
    """Wait until every row is finished; on timeout, fail naming the rows still open.

    Counts its polls rather than trusting one clock reading, so a jump of the clock
    cannot end the wait early.
    """
    for _ in range(int(timeout / 0.1)):
        if unfinished() == 0:
            return
        time.sleep(0.1)
    open_rows = list(
        DBTaskResult.objects.exclude(status__in=FINISHED).values_list(
            "status", "worker_id", "lease_expires_at", "worker_ids", "args_kwargs"
        )[:10]
    )
    alive = {fleet.name(worker): worker.process.poll() is None for worker in fleet.started}
    raise AssertionError(
        f"{unfinished()} tasks not finished after {timeout}s; workers alive: {alive}; "
        f"now {timezone.now().isoformat()}; some of them: {open_rows}"
    )


def unfinished() -> int | None:
    """Return how many rows are not finished yet (None while the database does not answer)."""
    return answering(lambda: DBTaskResult.objects.exclude(status__in=FINISHED).count())


# --- Worker processes ---------------------------------------------------------------------


class Fleet:
    """The worker processes of one test: start, find the live ones, stop them all."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.started: list[WorkerProcess] = []
        self.ids: dict[int, str] = {}

    def start(self, *arguments: str, worker_id: str | None = None) -> WorkerProcess:
        name = worker_id or f"worker-{len(self.started) + 1}"
        env = {**self.env, "PGAPPNAME": f"{APPLICATION_PREFIX}{name}"}
        worker = WorkerProcess(
            env, self.folder / f"{name}.log", "--worker-id", name, "--no-startup-delay", *arguments
        )
        self.started.append(worker)
        self.ids[worker.pid] = name
        return worker

    def name(self, worker: WorkerProcess) -> str:
        return self.ids[worker.pid]

    def alive(self) -> list[WorkerProcess]:
        return [worker for worker in self.started if worker.process.poll() is None]

    def stop_gracefully(self, timeout: float = 60) -> list[str]:
        """SIGTERM every live worker; return those still running after `timeout` seconds.

        A worker exits 0, or dies of the SIGTERM itself when it arrives before the worker
        installed its handlers (it had claimed nothing yet); any other exit is reported
        in the list too.
        """
        alive = self.alive()
        for worker in alive:
            worker.signal(signal.SIGTERM)
        wedged = []
        deadline = time.monotonic() + timeout
        for worker in alive:
            try:
                code = worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                code = None
                worker.signal(signal.SIGABRT)  # faulthandler writes every thread's stack
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(10)
                print(f"{self.name(worker)} overstayed SIGTERM:\n{worker.output()[-6000:]}")
            if code not in (0, -signal.SIGTERM):
                wedged.append(f"{self.name(worker)} (exit {code})")
        return wedged

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                # A stopped process takes SIGKILL too, but resume it so nothing lingers.
                worker.signal(signal.SIGCONT)
            worker.stop()


@pytest.fixture
def fleet(request, transactional_db) -> Iterator[Fleet]:
    """Start `db_worker` processes on the test database, with a 1.5 s lease; kill them after."""
    folder = OUTPUT / request.node.name.replace("/", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TASKS_LEASE_SECONDS": "1.5",
        # A worker that overstays its SIGTERM is sent SIGABRT: its threads' stacks then
        # land in its log (see Fleet.stop_gracefully).
        "PYTHONFAULTHANDLER": "1",
    }
    workers = Fleet(env, folder)
    yield workers
    workers.kill_all()


@pytest.fixture
def plan() -> Plan:
    return current_plan()


@pytest.fixture
def rng(request) -> random.Random:
    """A random generator whose seed is printed, so a run can be replayed with it."""
    seed = int(os.environ.get("TASKS_RELIABILITY_SEED") or random.randrange(2**32))
    print(f"{request.node.name}: TASKS_RELIABILITY_SEED={seed}")
    return random.Random(seed)


def chaos(
    fleet: Fleet,
    rng: random.Random,
    *,
    kills: int,
    pause: tuple[float, float],
    done: Callable[[], bool],
    replacement: Callable[[], tuple[str, ...]],
) -> int:
    """SIGKILL a random live worker every `pause` seconds and start a replacement.

    Stop after `kills` kills, or as soon as `done()`; return how many were killed.
    """
    killed = 0
    while killed < kills and not done():
        time.sleep(rng.uniform(*pause))
        victims = fleet.alive()
        if victims:
            victim = rng.choice(victims)
            victim.signal(signal.SIGKILL)
            victim.process.wait(10)
            killed += 1
        fleet.start(*replacement())
    return killed


# --- Counting what ran --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    """What became of a set of tasks, judged by their rows and their Run side effects."""

    tasks: int
    ran: int
    """Tasks whose side effect was written at least once."""
    executions: int
    lost: list[str]
    """Tasks not finished at the end, or SUCCESSFUL without their side effect."""
    twice_within_lease_rule: list[str]
    """Tasks run more than once, each extra run explained by a lost attempt."""
    twice_beyond_lease_rule: list[str]
    """Tasks run more than once with no lost attempt to explain it: a bug."""
    given_up: list[str]
    """Tasks FAILED by MAX_LOST_ATTEMPTS: their workers kept dying under them."""
    failed: dict[str, str]
    """Tasks FAILED for another reason: key -> the exception class of the last error."""

    def summary(self) -> str:
        parts = [f"{self.executions} executions"]
        if self.twice_within_lease_rule:
            parts.append(f"{len(self.twice_within_lease_rule)} re-run after a lost attempt")
        if self.given_up:
            parts.append(f"{len(self.given_up)} FAILED by MAX_LOST_ATTEMPTS")
        if self.failed:
            reasons = collections.Counter(self.failed.values())
            parts.append(
                "FAILED: " + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
            )
        return "; ".join(parts)


def audit(keys: Mapping[str, str]) -> Audit:
    """Judge the tasks of `keys` (result id -> the key its Run rows carry).

    A task may run more than once only if its row shows why: more than one attempt and a
    `WorkerLost` error, with no more runs than attempts (the at-least-once lease rule).
    """
    runs = dict(
        Run.objects.filter(key__in=keys.values())
        .values_list("key")
        .annotate(Count("id"))
        .order_by()
    )
    rows = {str(row.id): row for row in DBTaskResult.objects.filter(id__in=list(keys))}
    lost, within, beyond, given_up, failed = [], [], [], [], {}
    for result_id, key in keys.items():
        row = rows.get(result_id)
        count = runs.get(key, 0)
        if row is None or row.status not in FINISHED:
            lost.append(key)
            continue
        errors = [error["exception_class_path"] for error in row.errors]
        lost_attempts = errors.count(WORKER_LOST)
        if row.status == TaskResultStatus.SUCCESSFUL and count == 0:
            lost.append(key)
        elif row.status == TaskResultStatus.FAILED:
            if errors and errors[-1] == WORKER_LOST:
                given_up.append(key)
            else:
                failed[key] = errors[-1] if errors else "no error recorded"
        if count > 1:
            explained = row.attempts > 1 and lost_attempts >= 1 and count <= row.attempts
            (within if explained else beyond).append(key)
    return Audit(
        tasks=len(keys),
        ran=sum(1 for key in keys.values() if runs.get(key, 0) > 0),
        executions=sum(runs.get(key, 0) for key in keys.values()),
        lost=lost,
        twice_within_lease_rule=within,
        twice_beyond_lease_rule=beyond,
        given_up=given_up,
        failed=failed,
    )


def describe(keys: Iterable[str], limit: int = 5) -> list[dict[str, Any]]:
    """Return the rows and runs of a few keys, for an assertion message."""
    described = []
    for key in list(keys)[:limit]:
        row = DBTaskResult.objects.filter(args_kwargs__contains=f'"{key}"').first()
        described.append(
            {
                "key": key,
                "runs": list(Run.objects.filter(key=key).values_list("pid", flat=True)),
                "status": row and row.status,
                "worker_ids": row and row.all_worker_ids(),
                "errors": row and [(e["exception_class_path"], e["traceback"]) for e in row.errors],
            }
        )
    return described


# --- The table ----------------------------------------------------------------------------


class Report:
    """Rows of the long form's table, appended to `TASKS_RELIABILITY_REPORT` when it is set."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.path = os.environ.get("TASKS_RELIABILITY_REPORT")

    def add(
        self,
        fault: str,
        *,
        tasks: int | str,
        ran: int | str,
        lost: int | str,
        twice: int | str,
        wedged: int | str,
        notes: str = "",
    ) -> None:
        row = {
            "test": self.test,
            "fault": fault,
            "database": database_name(),
            "tasks": tasks,
            "ran": ran,
            "lost": lost,
            "twice": twice,
            "wedged": wedged,
            "notes": notes,
        }
        print(json.dumps(row))
        if self.path:
            with open(self.path, "a", encoding="utf-8") as report:
                report.write(json.dumps(row) + "\n")

    def add_audit(self, fault: str, result: Audit, wedged: list[str], notes: str = "") -> None:
        self.add(
            fault,
            tasks=result.tasks,
            ran=result.ran,
            lost=len(result.lost),
            twice=len(result.twice_beyond_lease_rule),
            wedged=len(wedged),
            notes="; ".join(part for part in (result.summary(), notes) if part),
        )


@pytest.fixture
def report(request) -> Report:
    return Report(request.node.name)


# --- Database faults ----------------------------------------------------------------------


def drop_worker_connections() -> int:
    """Close every other connection to the test database from the server side."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
        )
        dropped = 0
        for (thread_id,) in cursor.fetchall():
            try:
                cursor.execute(f"KILL CONNECTION {int(thread_id)}")
                dropped += 1
            except OperationalError:  # it had gone already
                pass
        return dropped


def worker_connections(fleet: Fleet, worker: WorkerProcess) -> int:
    """Return how many connections to the test database `worker` holds."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                [f"{APPLICATION_PREFIX}{fleet.name(worker)}"],
            )
            return int(cursor.fetchone()[0])
    if connection.vendor == "mysql":
        # Only this worker and this test are connected to the test database.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.PROCESSLIST "
                "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            )
            return int(cursor.fetchone()[0])
    # SQLite: a connection is an open file descriptor on the database file.
    name = str(connection.settings_dict["NAME"])
    folder = Path(f"/proc/{worker.pid}/fd")
    count = 0
    for fd in folder.iterdir():
        try:
            if os.readlink(fd) == name:
                count += 1
        except OSError:
            continue
    return count


@dataclasses.dataclass(frozen=True, slots=True)
class PostgresCluster:
    """The local PostgreSQL cluster, restarted with pg_ctlcluster (we are root here)."""

    version: str
    name: str = "main"

    def _ctl(self, action: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def running(self) -> bool:
        return self._ctl("status", timeout=30).returncode == 0

    def restart(self) -> None:
        done = self._ctl("restart")
        assert done.returncode == 0, done.stderr

    def ensure_running(self) -> None:
        if not self.running():
            self._ctl("start")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if answering(lambda: connection.ensure_connection() or True):
                return
            time.sleep(0.2)
        raise AssertionError("PostgreSQL did not come back within 60 s")


def local_postgres_cluster() -> PostgresCluster | None:
    """Return the cluster serving the test database if it is this machine's, else None."""
    if connection.vendor != "postgresql" or os.geteuid() != 0:
        return None
    if connection.settings_dict["HOST"] not in ("127.0.0.1", "localhost", "::1", ""):
        return None
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return PostgresCluster(versions[-1]) if versions else None


@pytest.fixture
def postgres_cluster(transactional_db) -> Iterator[PostgresCluster]:
    """The local cluster; whatever the test does, it is running again afterwards."""
    cluster = local_postgres_cluster()
    if cluster is None:
        pytest.skip("restarting the server needs a local PostgreSQL cluster and root")
    try:
        yield cluster
    finally:
        cluster.ensure_running()

"""The database backend end to end: enqueue, drain with real workers, pickup latency.

For each database (SQLite, PostgreSQL, MariaDB), on a benchmark database created fresh
for the run (a temporary SQLite file in WAL mode with synchronous=NORMAL, or
`tasks_bench` dropped and created on the server, then migrated), it measures:

- single enqueue rate: `task.enqueue(...)` in autocommit, one call at a time, for a
  3-argument and a 10-argument task;
- bulk enqueue rate: `task.enqueue_many(task.arguments(...) for ...)` of 10,000 calls;
- drain rate: 10,000 ready no-op tasks run by 1, then 2, `db_worker --batch --prefetch 100`
  processes, from the first process's start to the last one's exit, with the workers'
  CPU time per task (`RUSAGE_CHILDREN`) and peak RSS (`VmHWM`, sampled every 10 ms, as
  `ru_maxrss` inherits the parent's); every row must then be SUCCESSFUL with exactly one
  worker id. The same for an empty queue gives the start-up cost, which the "net" rows
  subtract;
- SQL statements per task: at enqueue (`CaptureQueriesContext`), and in the library's
  worker run in this process over 10,000 tasks, counting statements on every thread;
- pickup latency: one idle worker (`--interval 0.5`; PostgreSQL is also woken by NOTIFY)
  is fed 200 no-op tasks 20 ms apart; `started_at - enqueued_at` of the rows gives
  p50/p95/p99; then the idle worker's CPU use over 5 seconds, as % of one core.

Each figure is the median of 3 runs (1 with `--quick`, which also runs 1,000 tasks and
50 latency tasks, for a CI smoke run). The issue's targets are printed next to the
figures. Run with `./dev bench queue [--databases sqlite,postgresql] [--json PATH] [--quick]`.

Each database is measured by `tests.benchmarks._queue_measure` in a process of its own,
with DATABASE_URL pointing at the benchmark database.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.benchmarks._harness import (
    SQLITE_INSERTS_IN_ISSUE,
    BenchSettings,
    environment,
    machine_probe,
    table,
)
from tests.benchmarks._queue_measure import Plan

ROOT = Path(__file__).resolve().parents[2]
DATABASES = ("sqlite", "postgresql", "mariadb")
BENCH_DATABASE = "tasks_bench"
"""The server database the benchmark drops and creates; no test uses this name."""
DEFAULT_REPEAT = 3


def plan_for(settings: BenchSettings) -> Plan:
    """Return the full plan, or the short one for `--quick`."""
    if settings.quick:
        return Plan(
            tasks=1_000,
            single_calls=200,
            repeat=settings.repeat,
            latency_tasks=50,
            idle_seconds=2.0,
            timeout=120.0,
            profile=settings.profile,
        )
    return Plan(
        tasks=10_000,
        single_calls=2_000,
        repeat=settings.repeat,
        latency_tasks=200,
        idle_seconds=5.0,
        timeout=300.0,
        profile=settings.profile,
    )


# --- The rows and the issue's targets ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    label: str
    spec: str
    """The format of the figure."""
    targets: Mapping[str, float] = field(default_factory=dict)
    """Database -> the issue's bound; higher figures are better unless `at_most`."""
    at_most: bool = False

    def meets(self, database: str, value: float) -> bool | None:
        bound = self.targets.get(database)
        if bound is None:
            return None
        return value <= bound if self.at_most else value >= bound

    def describe_target(self) -> str:
        sign = "≤" if self.at_most else "≥"
        by_bound: dict[float, list[str]] = {}
        for database, bound in self.targets.items():
            by_bound.setdefault(bound, []).append(database)
        return "; ".join(
            f"{'/'.join(databases)} {sign} {bound:{self.spec}}"
            for bound, databases in by_bound.items()
        )


SQLITE_PG = ("sqlite", "postgresql")


def _both(bound: float) -> dict[str, float]:
    return dict.fromkeys(SQLITE_PG, bound)


ENQUEUE_SINGLE = {"sqlite": 5_000, "postgresql": 1_500}
ENQUEUE_BULK = {"sqlite": 100_000, "postgresql": 50_000}

ROWS = [
    Row("single_enqueue_3", "single enqueue, 3 args (calls/s)", ",.0f", ENQUEUE_SINGLE),
    Row("single_enqueue_10", "single enqueue, 10 args (calls/s)", ",.0f", ENQUEUE_SINGLE),
    Row("bulk_enqueue_3", "bulk enqueue, 3 args (calls/s)", ",.0f", ENQUEUE_BULK),
    Row("bulk_enqueue_10", "bulk enqueue, 10 args (calls/s)", ",.0f", ENQUEUE_BULK),
    Row("drain_1", "drain, 1 worker process (tasks/s)", ",.0f", _both(5_000)),
    Row("drain_2", "drain, 2 worker processes (tasks/s)", ",.0f"),
    Row("drain_1_net", "  1 worker, net of start-up (tasks/s)", ",.0f"),
    Row("drain_2_net", "  2 workers, net of start-up (tasks/s)", ",.0f"),
    Row("drain_1_cpu_ms", "worker CPU per task, 1 worker (ms)", ".3f", _both(0.2), True),
    Row("drain_2_cpu_ms", "worker CPU per task, 2 workers (ms)", ".3f", _both(0.2), True),
    Row("drain_1_cpu_net_ms", "  1 worker, net of start-up (ms)", ".3f"),
    Row("drain_1_rss_mb", "worker peak RSS, 1 worker (MB)", ".1f"),
    Row("drain_2_rss_mb", "worker peak RSS, 2 workers (MB)", ".1f"),
    Row("worker_empty_s", "worker start to exit, empty queue (s)", ".2f"),
    Row("worker_empty_cpu_ms", "worker CPU, empty queue (ms)", ",.0f"),
    Row("inprocess_drain", "in-process worker drain (tasks/s)", ",.0f"),
    Row("inprocess_cpu_ms", "in-process worker CPU per task (ms)", ".3f"),
    Row("statements_single_3", "SQL per single enqueue, 3 args", ".2f"),
    Row("statements_single_10", "SQL per single enqueue, 10 args", ".2f"),
    Row("statements_bulk_3", "SQL per task, bulk enqueue, 3 args", ".4f"),
    Row("statements_bulk_10", "SQL per task, bulk enqueue, 10 args", ".4f"),
    Row("statements_worker", "SQL per task, worker draining", ".3f", _both(0.25), True),
    Row("latency_p50_ms", "pickup latency p50 (ms)", ",.1f", {"postgresql": 5}, True),
    Row("latency_p95_ms", "pickup latency p95 (ms)", ",.1f"),
    Row("latency_p99_ms", "pickup latency p99 (ms)", ",.1f", {"postgresql": 50}, True),
    Row("latency_max_ms", "pickup latency max (ms)", ",.1f"),
    Row("idle_cpu_pct", "idle worker CPU (% of one core)", ".2f", {"postgresql": 2}, True),
]


# --- The benchmark databases -------------------------------------------------------------


def _server_url(variable: str, default: str) -> str:
    """Return the server URL from `variable` (as `./dev test` reads it), on `tasks_bench`."""
    parts = urlsplit(os.environ.get(variable, default))
    return urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))


def _recreate_postgresql(url: str, drop_only: bool = False) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password or "",
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    ) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        if not drop_only:
            connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")


def _recreate_mariadb(url: str, drop_only: bool = False) -> None:
    import pymysql

    parts = urlsplit(url)
    connection = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        connect_timeout=5,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")
            if not drop_only:
                cursor.execute(
                    f"CREATE DATABASE {BENCH_DATABASE} "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
    finally:
        connection.close()


class DatabaseUnavailable(Exception):
    """The benchmark database cannot be created: no server, or one that refuses us."""


@contextmanager
def bench_database(name: str) -> Iterator[str]:
    """Create a fresh, empty benchmark database; yield its URL; drop it afterwards."""
    if name == "sqlite":
        folder = tempfile.mkdtemp(prefix="django_tasks_bench_")
        try:
            yield f"sqlite:///{folder}/bench.sqlite3"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    recreate: Callable[..., None]
    if name == "postgresql":
        url = _server_url("POSTGRES_URL", "postgres://root@127.0.0.1:5432/test")
        recreate = _recreate_postgresql
    else:
        url = _server_url("MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
        recreate = _recreate_mariadb
    try:
        recreate(url)
    except Exception as error:  # no server, or one that refuses us
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise DatabaseUnavailable(f"cannot create {BENCH_DATABASE} at {url}: {message}") from None
    try:
        yield url
    finally:
        recreate(url, drop_only=True)


# --- Running one database ----------------------------------------------------------------


def measure_database(name: str, plan: Plan) -> dict[str, Any]:
    """Measure one database in a child process; return its figures and problems."""
    with bench_database(name) as url, tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        print(f"\n== queue benchmark on {name} ({url})", file=sys.stderr, flush=True)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(ROOT),
        }
        command = [
            *(sys.executable, "-m", "tests.benchmarks._queue_measure"),
            *(f"--out={out}", f"--name={name}"),
        ]
        child = subprocess.Popen([*command, *plan.arguments()], env=env, cwd=ROOT)
        budget = plan.timeout * (8 * plan.repeat + 4)
        try:
            code = child.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _stop(child)
        result: dict[str, Any] = {"figures": {}, "problems": []}
        if out.exists():  # written even when the measuring process was stopped
            result = json.loads(out.read_text(encoding="utf-8"))
        if code is None:
            result["problems"].append(f"not done in {budget:.0f} s; stopped")
        elif code != 0:
            result["problems"].append(f"the measuring process exited {code}")
        return result


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Stop the measuring process: SIGTERM lets it kill its workers; SIGKILL if it hangs."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def source_state() -> dict[str, str]:
    """Return the commit and a digest of uncommitted changes under `django_tasks/`.

    Numbers are only comparable for the same code; this says which code it was.
    """

    def git(*arguments: str) -> str:
        done = subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else "?"

    diff = git("diff", "HEAD", "--", "django_tasks")
    digest = hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else "none"
    return {"commit": git("rev-parse", "--short", "HEAD"), "django_tasks_changes": digest}


def run(settings: BenchSettings) -> dict[str, Any]:
    """Measure every database asked for, print the table, and return the numbers."""
    plan = plan_for(settings)
    started = time.perf_counter()
    compiled = compile_project()
    load = {"start": os.getloadavg()}
    warn_if_busy(load["start"][0])
    probes = {"start": machine_probe()}
    results: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        for name in settings.databases or DATABASES:
            try:
                results[name] = measure_database(name, plan)
            except DatabaseUnavailable as error:
                if settings.databases:  # asked for by name: its absence is a failure
                    problems.append(f"{name}: {error}")
                else:
                    print(f"SKIPPED {name}: {error}", file=sys.stderr)
                continue
            problems += [f"{name}: {problem}" for problem in results[name]["problems"]]
    finally:
        signal.signal(signal.SIGTERM, previous)
    load["end"] = os.getloadavg()
    probes["end"] = machine_probe()
    figures = {name: result["figures"] for name, result in results.items()}
    print_report(figures, plan, problems, time.perf_counter() - started, probes)
    return {
        "statistic": f"median of {plan.repeat} runs",
        "plan": asdict(plan),
        "environment": {**environment(), "cpus": str(os.cpu_count())},
        "load_average": load,
        "machine_probe": probes,
        "source": source_state(),
        "compiled_modules": compiled,
        "targets": {row.key: dict(row.targets) for row in ROWS if row.targets},
        "databases": figures,
        "meets_targets": meets_targets(figures),
        "problems": problems,
        "seconds": round(time.perf_counter() - started, 1),
    }


def compile_project() -> int:
    """Write the bytecode of the library and the test project, as an installed project has.

    A worker otherwise compiles every one of their modules from source at each start when
    no `__pycache__` can be written (`PYTHONDONTWRITEBYTECODE`, read-only checkouts): about
    0.25 s of a 0.7 s start, measured, that a project installed from a wheel or deployed
    with `compileall` never pays. Their dependencies' bytecode was written when pip
    installed them. Returns how many modules were compiled (0 when all were current).
    """
    import compileall
    import io
    from contextlib import redirect_stdout

    before = {path: path.stat().st_mtime for path in _bytecode_files()}
    with redirect_stdout(io.StringIO()):
        for directory in ("django_tasks", "tests"):
            compileall.compile_dir(ROOT / directory, quiet=1)
    after = {path: path.stat().st_mtime for path in _bytecode_files()}
    compiled = sum(1 for path, mtime in after.items() if before.get(path) != mtime)
    print(f"bytecode: {compiled} module(s) of django_tasks/ and tests/ compiled for the workers")
    return compiled


def _bytecode_files() -> list[Path]:
    return [
        path
        for directory in ("django_tasks", "tests")
        for path in (ROOT / directory).rglob("*.pyc")
    ]


def _exit_on_signal(number: int, frame: Any) -> None:
    raise SystemExit(128 + number)  # so the benchmark databases and workers are cleaned up


def warn_if_busy(load: float) -> None:
    """Say so when other work competes for the CPUs: the figures would be too low."""
    cpus = os.cpu_count() or 1
    if load > cpus / 2:
        print(
            f"WARNING: load average {load:.1f} on {cpus} CPUs: other processes compete with "
            "the benchmark, so its figures will be low and noisy.",
            file=sys.stderr,
        )


def meets_targets(figures: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, bool]]:
    verdicts: dict[str, dict[str, bool]] = {}
    for row in ROWS:
        for name, values in figures.items():
            if row.key in values:
                verdict = row.meets(name, values[row.key]["median"])
                if verdict is not None:
                    verdicts.setdefault(row.key, {})[name] = verdict
    return verdicts


def print_report(
    figures: Mapping[str, Mapping[str, Any]],
    plan: Plan,
    problems: Sequence[str],
    seconds: float,
    probes: Mapping[str, Mapping[str, float]],
) -> None:
    names = list(figures)
    rows = []
    for row in ROWS:
        cells = [row.label]
        for name in names:
            figure = figures[name].get(row.key)
            if figure is None:
                cells.append("-")
                continue
            verdict = row.meets(name, figure["median"])
            mark = {None: "", True: " ok", False: " MISS"}[verdict]
            cells.append(f"{figure['median']:{row.spec}}{mark}")
        rows.append([*cells, row.describe_target()])
    print(
        f"\nqueue: median of {plan.repeat} run(s); {plan.tasks:,} tasks per bulk enqueue "
        f"and drain, {plan.single_calls:,} single enqueues per run, {plan.latency_tasks} "
        "latency tasks 20 ms apart\n"
    )
    print(table(["metric", *names, "target (issue)"], rows))
    print()
    for name in names:
        database = figures[name].get("database", {})
        print(f"{name}: {', '.join(f'{k}={v}' for k, v in database.items())}")
        worker = figures[name].get("statements_worker")
        if worker:
            print(f"  worker statements, last in-process run: {worker['by_kind_last_run']}")
        drain = figures[name].get("drain_2")
        if drain:
            print(f"  tasks per worker, 2 workers: {drain['per_worker']}")
    source = source_state()
    print(
        f"\ncode: commit {source['commit']}, uncommitted changes under django_tasks/: "
        f"{source['django_tasks_changes']}"
    )
    start, end = probes["start"], probes["end"]
    print(
        f"machine probe, start / end: Python loop {start['python_loop_us']} / "
        f"{end['python_loop_us']} µs, fsync {start['fsync_ms']} / {end['fsync_ms']} ms "
        "(see machine_probe; compare only runs whose probes agree)"
    )
    inserts = [probe["sqlite_inserts_per_s"] for probe in (start, end)]
    low, high = (rate / SQLITE_INSERTS_IN_ISSUE for rate in sorted(inserts))
    print(
        f"SQLite autocommit INSERTs/s, start / end: {inserts[0]:,} / {inserts[1]:,}: "
        f"{low:.2f} to {high:.2f} times the issue's machine ({SQLITE_INSERTS_IN_ISSUE:,}/s), "
        "for which its targets are set"
    )
    print(f"queue benchmark took {seconds:.0f} s")
    if problems:
        print(f"\n*** {len(problems)} PROBLEM(S) FOUND:")
        for problem in problems:
            print(f"- {problem}")

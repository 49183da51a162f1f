"""One database's figures for the queue benchmark, measured in a process of its own.

`tests.benchmarks.database_queue` runs `python -m tests.benchmarks._queue_measure` once per
database, with DATABASE_URL naming a fresh, empty benchmark database, and reads the JSON
this writes to `--out`. A process per database leaves Django's settings (which name one
database) as they are, and makes the worker processes the only children of this one, so
`getrusage(RUSAGE_CHILDREN)` counts them and nothing else.

Every figure is the median of `--repeat` runs; a run whose worker misbehaves (does not
finish, exits non-zero, leaves a row not SUCCESSFUL or runs one twice) is reported in
`problems` and the figures go on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SUCCESSFUL = "SUCCESSFUL"
DRAIN_ARGUMENTS = ("--batch", "--no-startup-delay", "-v", "0", "--prefetch", "100")


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How much work each measurement does."""

    tasks: int
    """Calls per bulk enqueue, and tasks per drain."""
    single_calls: int
    """Calls per timed run of single enqueues."""
    repeat: int
    latency_tasks: int
    latency_gap: float = 0.02
    idle_seconds: float = 5.0
    interval: float = 0.5
    timeout: float = 300.0
    """Seconds a drain or a pickup run may take before it is reported as stuck."""
    profile: int = 0
    """How many of the hottest functions to print (`profile_hot_paths`); 0: none."""

    def arguments(self) -> list[str]:
        """Return the command-line options that give this plan to `main`."""
        return [
            f"--tasks={self.tasks}",
            f"--single-calls={self.single_calls}",
            f"--repeat={self.repeat}",
            f"--latency-tasks={self.latency_tasks}",
            f"--idle-seconds={self.idle_seconds}",
            f"--timeout={self.timeout}",
            f"--profile={self.profile}",
        ]


@dataclass(slots=True)
class Report:
    """The figures of one database, and what went wrong while measuring them."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def figure(self, key: str, runs: Sequence[float], **extra: Any) -> float:
        """Record the runs of one figure under `key`; return their median."""
        median = statistics.median(runs)
        self.figures[key] = {"median": median, "runs": list(runs), **extra}
        return median

    def check_output(self, what: str, name: str, lines: Sequence[str]) -> None:
        """Report the warnings and errors a worker logged, which a clean run has none of."""
        if lines:
            shown = "\n".join(lines[:5]) + (f"\n... ({len(lines)} lines)" if len(lines) > 5 else "")
            self.problem(f"{what}: {name} logged {len(lines)} warning/error line(s):\n{shown}")

    def problem(self, message: str) -> None:
        self.problems.append(message)
        print(f"\n*** PROBLEM ({self.name}): {message}\n", file=sys.stderr, flush=True)


def progress(name: str, message: str) -> None:
    print(f"  [{name}] {message}", file=sys.stderr, flush=True)


# --- Profiles ------------------------------------------------------------------------------


def profile_hot_paths(report: Report, plan: Plan) -> None:
    """Profile an in-process drain and a 10-argument bulk enqueue; print the hottest functions.

    Each runs once under `cProfile`, after the timed runs, so the profiler's own cost
    (about half again) is in no figure; the rows are kept in the JSON as `profile_*`.
    """
    import cProfile

    clear()
    enqueue_noops(plan.tasks)
    profiler = cProfile.Profile()
    profiler.runcall(in_process_worker().run)
    check_ran_once(report, "the profiled drain", plan.tasks)
    _keep_profile(report, plan, "worker", f"in-process drain of {plan.tasks:,} tasks", profiler)
    clear()
    task_, args, kwargs = cases()["10"]
    calls = [task_.arguments(*args, **kwargs) for _ in range(plan.tasks)]
    profiler = cProfile.Profile()
    profiler.runcall(task_.enqueue_many, calls)
    what = f"enqueue_many of {plan.tasks:,} 10-argument calls"
    _keep_profile(report, plan, "bulk_enqueue_10", what, profiler)
    clear()


def _keep_profile(report: Report, plan: Plan, key: str, what: str, profiler: Any) -> None:
    """Print the `plan.profile` functions with the most own time, and keep them."""
    import pstats

    stats = pstats.Stats(profiler)
    by_own_time = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    top = [
        {"function": _where(*function), "calls": calls, "own_s": own, "cumulative_s": cumulative}
        for function, (_, calls, own, cumulative, _) in by_own_time[: plan.profile]
    ]
    total: float = stats.total_tt  # type: ignore[attr-defined]
    report.figures[f"profile_{key}"] = {"what": what, "seconds": total, "top": top}
    progress(report.name, f"profile of the {what}: {total:.3f} s under cProfile")
    print("      own s    cum s     calls  function", file=sys.stderr)
    for row in top:
        print(
            f"    {row['own_s']:7.3f}  {row['cumulative_s']:7.3f}  {row['calls']:>8}  "
            f"{row['function']}",
            file=sys.stderr,
        )


def _where(filename: str, line: int, name: str) -> str:
    """Name a profiled function by its file below the project or site-packages."""
    if filename == "~":  # a built-in, or a C function's repr: "<function f at 0x...>"
        return re.sub(r" at 0x[0-9a-f]+>$", ">", name)
    for marker in ("site-packages/", f"{Path(__file__).resolve().parents[2]}/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
    return f"{filename}:{line}({name})"


# --- The table ---------------------------------------------------------------------------


def model() -> Any:
    from django_tasks.backends.database.models import DBTaskResult

    return DBTaskResult


def clear() -> None:
    """Empty the result table, so each run sees only its own rows."""
    from django.db import connection

    table = connection.ops.quote_name(model()._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DELETE FROM {table}")
        else:
            cursor.execute(f"TRUNCATE TABLE {table}")


def analyze() -> None:
    """Refresh the server's planner statistics, as autovacuum would on a live table.

    SQLite never gathers statistics on its own, so it is left as a project would have it.
    """
    from django.db import connection

    table = connection.ops.quote_name(model()._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {table}")
        elif connection.vendor == "mysql":
            cursor.execute(f"ANALYZE TABLE {table}")
            cursor.fetchall()


def enqueue_noops(count: int) -> None:
    from tests.benchmarks.bench_tasks import noop

    noop.enqueue_many(noop.arguments() for _ in range(count))
    analyze()


def check_ran_once(report: Report, what: str, expected: int) -> Counter[str]:
    """Check every row is SUCCESSFUL with one attempt; return tasks run per worker."""
    rows = list(model().objects.values_list("status", "worker_ids"))
    statuses = Counter(status for status, _ in rows)
    attempts = Counter(len(worker_ids) for _, worker_ids in rows)
    if len(rows) != expected or statuses[SUCCESSFUL] != expected or attempts[1] != expected:
        report.problem(
            f"{what}: expected {expected} rows, each SUCCESSFUL with one worker id; found "
            f"{len(rows)} rows, statuses {dict(statuses)}, worker_ids lengths {dict(attempts)}"
        )
    return Counter(worker_ids[0] for _, worker_ids in rows if worker_ids)


# --- Enqueue -----------------------------------------------------------------------------


WHEN = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def cases() -> dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """Return name -> (task on the database backend, args, kwargs)."""
    from tests.benchmarks.bench_tasks import ten_args, three_args

    ten_kwargs = {
        "tags": ["new", "vip", "eu"],
        "scores": {"math": 90, "art": 97},
        "ratio": 0.25,
        "active": True,
        "note": None,
        "attempt": 1,
        "source": "checkout",
    }
    return {
        "3": (three_args.using(backend="database"), (42, "ada@example.com", WHEN), {}),
        "10": (ten_args.using(backend="database"), (42, "ada@example.com", WHEN), ten_kwargs),
    }


def statement_kinds(queries: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Count captured statements by their first word."""
    return dict(Counter(query["sql"].split(None, 1)[0].upper() for query in queries))


def measure_enqueue(report: Report, plan: Plan) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for name, (task_, args, kwargs) in cases().items():
        for _ in range(20):  # warm-up: imports, lazily built validators
            task_.enqueue(*args, **kwargs)
        single, bulk = [], []
        for _ in range(plan.repeat):
            clear()
            start = time.perf_counter()
            for _ in range(plan.single_calls):
                task_.enqueue(*args, **kwargs)
            single.append(plan.single_calls / (time.perf_counter() - start))
            clear()
            start = time.perf_counter()
            task_.enqueue_many(task_.arguments(*args, **kwargs) for _ in range(plan.tasks))
            bulk.append(plan.tasks / (time.perf_counter() - start))
        rate = report.figure(f"single_enqueue_{name}", single, calls=plan.single_calls)
        progress(report.name, f"single enqueue, {name} args: {rate:,.0f} calls/s")
        rate = report.figure(f"bulk_enqueue_{name}", bulk, calls=plan.tasks)
        progress(report.name, f"bulk enqueue, {name} args: {rate:,.0f} calls/s")
        clear()
        calls = 100
        with CaptureQueriesContext(connection) as single_queries:
            for _ in range(calls):
                task_.enqueue(*args, **kwargs)
        with CaptureQueriesContext(connection) as bulk_queries:
            task_.enqueue_many(task_.arguments(*args, **kwargs) for _ in range(plan.tasks))
        report.figure(
            f"statements_single_{name}",
            [len(single_queries) / calls],
            by_kind=statement_kinds(single_queries.captured_queries),
        )
        report.figure(
            f"statements_bulk_{name}",
            [len(bulk_queries) / plan.tasks],
            by_kind=statement_kinds(bulk_queries.captured_queries),
        )
    clear()


# --- Draining with worker processes ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrainRun:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    per_worker: dict[str, int]


def drain_once(report: Report, plan: Plan, count: int, tasks: int, logs: Path) -> DrainRun | None:
    """Drain `tasks` ready no-op tasks with `count` worker processes started together.

    Return None if they did not all exit within the plan's timeout.
    """
    from django.db import connection

    from tests.benchmarks._processes import children_cpu_seconds, reap_all, worker_processes

    what = f"drain of {tasks} tasks by {count} worker process(es)"
    clear()
    if tasks:
        enqueue_noops(tasks)
    connection.close()
    cpu_before = children_cpu_seconds()
    with worker_processes(count, DRAIN_ARGUMENTS, logs) as workers:
        started = workers[0].started_at
        if not reap_all(workers, plan.timeout):
            left = Counter(model().objects.values_list("status", flat=True))
            cpu = [f"{worker.log.stem} {worker.cpu_seconds():.1f} s" for worker in workers]
            report.problem(
                f"{what}: not all exited within {plan.timeout:g} s (rows by status: "
                f"{dict(left)}; CPU used: {', '.join(cpu)}); killed. Last output of "
                f"bench-1:\n{workers[0].log_tail()}"
            )
            return None
        seconds = max(worker.exited_at or 0.0 for worker in workers) - started
        for worker in workers:
            if worker.returncode != 0:
                report.problem(
                    f"{what}: {worker.log.stem} exited {worker.returncode}:\n{worker.log_tail()}"
                )
            else:
                report.check_output(what, worker.log.stem, worker.unexpected_output())
    cpu = children_cpu_seconds() - cpu_before
    rss = max(worker.peak_rss_mb() for worker in workers)
    per_worker = check_ran_once(report, what, tasks)
    return DrainRun(seconds, cpu, rss, dict(per_worker))


def measure_drains(report: Report, plan: Plan, logs: Path) -> None:
    """Drain an empty queue, then `plan.tasks` tasks with 1 and with 2 worker processes.

    After a drain that does not finish, the rest are skipped: each would wait as long.
    """
    empty_runs = []
    for _ in range(plan.repeat):
        run = drain_once(report, plan, 1, 0, logs)
        if run is None:
            report.problem("the worker-process drains were skipped")
            return
        empty_runs.append(run)
    empty_seconds = report.figure("worker_empty_s", [run.seconds for run in empty_runs])
    empty_cpu = report.figure("worker_empty_cpu_ms", [run.cpu_seconds * 1e3 for run in empty_runs])
    report.figure("worker_empty_rss_mb", [run.peak_rss_mb for run in empty_runs])
    progress(
        report.name,
        f"worker start to exit, empty queue: {empty_seconds:.2f} s, {empty_cpu:.0f} ms CPU",
    )
    for count in (1, 2):
        runs = []
        for _ in range(plan.repeat):
            run = drain_once(report, plan, count, plan.tasks, logs)
            if run is None:
                report.problem("the remaining worker-process drains were skipped")
                return
            runs.append(run)
        rate = report.figure(
            f"drain_{count}",
            [plan.tasks / run.seconds for run in runs],
            tasks=plan.tasks,
            per_worker=[run.per_worker for run in runs],
        )
        cpu = report.figure(
            f"drain_{count}_cpu_ms", [run.cpu_seconds * 1e3 / plan.tasks for run in runs]
        )
        report.figure(f"drain_{count}_rss_mb", [run.peak_rss_mb for run in runs])
        # Start-up runs in parallel (wall clock) but costs each process its CPU.
        report.figure(
            f"drain_{count}_net",
            [plan.tasks / max(run.seconds - empty_seconds, 1e-9) for run in runs],
        )
        report.figure(
            f"drain_{count}_cpu_net_ms",
            [(run.cpu_seconds * 1e3 - count * empty_cpu) / plan.tasks for run in runs],
        )
        progress(
            report.name,
            f"drain, {count} worker process(es): {rate:,.0f} tasks/s, {cpu:.3f} ms CPU/task",
        )


# --- Statements in the worker, in this process --------------------------------------------


@dataclass(frozen=True, slots=True)
class InProcessRun:
    seconds: float
    cpu_seconds: float
    statements: Counter[str]


def in_process_worker() -> Any:
    """Return the library's worker as `db_worker` runs it in the drains: batch, prefetch 100."""
    from django_tasks import task_backends
    from django_tasks.backends.database.worker import Worker, WorkerOptions

    options = WorkerOptions(queues=None, batch=True, startup_delay=False, prefetch=100)
    return Worker(task_backends["database"], options)


def drain_in_process(report: Report, plan: Plan) -> InProcessRun | None:
    """Drain `plan.tasks` tasks with the library's worker in this process.

    Return None if it did not finish within the plan's timeout (it is then stopped).
    """
    from tests.benchmarks._statements import StatementCounter, logged_warnings

    what = f"in-process drain of {plan.tasks} tasks"
    clear()
    enqueue_noops(plan.tasks)
    worker = in_process_worker()
    timed_out = threading.Event()

    def give_up() -> None:
        timed_out.set()
        worker.request_stop()

    counter = StatementCounter()
    watchdog = threading.Timer(plan.timeout, give_up)
    watchdog.start()
    cpu_start, start = time.process_time(), time.perf_counter()
    try:
        with counter.counting(), logged_warnings() as lines:
            worker.run()
    finally:
        watchdog.cancel()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    report.check_output(what, "the worker", lines)
    if timed_out.is_set():
        left = Counter(model().objects.values_list("status", flat=True))
        report.problem(
            f"{what}: not done within {plan.timeout:g} s (rows by status: {dict(left)}); "
            "stopped with request_stop()"
        )
        return None
    check_ran_once(report, what, plan.tasks)
    return InProcessRun(seconds, cpu, counter.kinds)


def measure_worker_statements(report: Report, plan: Plan) -> None:
    """Drain with the library's worker in this process, counting its statements."""
    runs = []
    for _ in range(plan.repeat):
        run = drain_in_process(report, plan)
        if run is None:
            return
        runs.append(run)
    kinds = runs[-1].statements
    per_task = report.figure(
        "statements_worker",
        [sum(run.statements.values()) / plan.tasks for run in runs],
        by_kind_last_run={kind: kinds[kind] for kind in sorted(kinds)},
    )
    rate = report.figure("inprocess_drain", [plan.tasks / run.seconds for run in runs])
    report.figure("inprocess_cpu_ms", [run.cpu_seconds * 1e3 / plan.tasks for run in runs])
    progress(
        report.name,
        f"in-process worker: {per_task:.3f} statements/task ({dict(kinds)}), {rate:,.0f} tasks/s",
    )
    clear()


# --- Pickup latency and the idle worker ---------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the value at `fraction` by linear interpolation (numpy's default method)."""
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def pickup_once(report: Report, plan: Plan, logs: Path) -> tuple[list[float], float] | None:
    """Feed one idle worker tasks `latency_gap` apart; return latencies (ms) and idle CPU %."""
    from tests.benchmarks._processes import worker_processes
    from tests.benchmarks.bench_tasks import noop

    rows = model().objects
    what = f"pickup latency ({plan.latency_tasks} tasks, --interval {plan.interval})"
    clear()
    arguments = ["--no-startup-delay", "-v", "0", "--interval", str(plan.interval)]
    with worker_processes(1, arguments, logs) as [worker]:
        warm = noop.enqueue()
        if not wait_until(lambda: rows.filter(id=warm.id, status=SUCCESSFUL).exists(), 60):
            report.problem(f"{what}: the idle worker never ran a first task:\n{worker.log_tail()}")
            return None
        ids = []
        start = time.perf_counter()
        for number in range(plan.latency_tasks):
            time.sleep(max(0.0, start + number * plan.latency_gap - time.perf_counter()))
            ids.append(noop.enqueue().id)
        finished = rows.filter(id__in=ids, status=SUCCESSFUL)
        if not wait_until(lambda: finished.count() == len(ids), plan.timeout):
            left = Counter(rows.filter(id__in=ids).values_list("status", flat=True))
            report.problem(
                f"{what}: tasks not all run (by status: {dict(left)}):\n{worker.log_tail()}"
            )
            return None
        time.sleep(1.0)  # let the worker settle into idling
        cpu_start, idle_start = worker.cpu_seconds(), time.perf_counter()
        time.sleep(plan.idle_seconds)
        idle = (worker.cpu_seconds() - cpu_start) / (time.perf_counter() - idle_start) * 100
        if worker.stop() != 0:
            report.problem(
                f"{what}: the worker exited {worker.returncode} after SIGTERM:\n{worker.log_tail()}"
            )
        else:
            report.check_output(what, worker.log.stem, worker.unexpected_output())
    check_ran_once(report, what, len(ids) + 1)
    pairs = rows.filter(id__in=ids).values_list("enqueued_at", "started_at")
    latencies = sorted((started - enqueued).total_seconds() * 1e3 for enqueued, started in pairs)
    return latencies, idle


def measure_pickup(report: Report, plan: Plan, logs: Path) -> None:
    runs = [run for run in (pickup_once(report, plan, logs) for _ in range(plan.repeat)) if run]
    if not runs:
        return
    for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        report.figure(
            f"latency_{name}_ms", [percentile(latencies, fraction) for latencies, _ in runs]
        )
    report.figure("latency_max_ms", [latencies[-1] for latencies, _ in runs])
    report.figure("idle_cpu_pct", [idle for _, idle in runs], seconds=plan.idle_seconds)
    figures = report.figures
    progress(
        report.name,
        f"pickup latency p50/p95/p99: {figures['latency_p50_ms']['median']:.1f} / "
        f"{figures['latency_p95_ms']['median']:.1f} / {figures['latency_p99_ms']['median']:.1f}"
        f" ms; idle worker {figures['idle_cpu_pct']['median']:.2f}% CPU",
    )
    clear()


# --- The run -----------------------------------------------------------------------------


def describe_database() -> dict[str, Any]:
    """Return the server version and, on SQLite, the journal and sync modes in force."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
            cursor.execute("SELECT sqlite_version()")
            return {
                "server": f"SQLite {cursor.fetchone()[0]}",
                "journal_mode": journal,
                "synchronous": synchronous,
                "path": connection.settings_dict["NAME"],
            }
        cursor.execute("SELECT version()")
        version = str(cursor.fetchone()[0])
        # What a commit costs: whether it waits for the disk.
        if connection.vendor == "postgresql":
            server = " ".join(version.split()[:2])
            cursor.execute("SELECT current_setting('synchronous_commit'), current_setting('fsync')")
            durability = "synchronous_commit={}, fsync={}".format(*cursor.fetchone())
        else:
            server = version if "MariaDB" in version else f"MySQL {version}"
            cursor.execute("SELECT @@innodb_flush_log_at_trx_commit")
            durability = f"innodb_flush_log_at_trx_commit={cursor.fetchone()[0]}"
    return {"server": server, "durability": durability, "name": connection.settings_dict["NAME"]}


def measure(report: Report, plan: Plan) -> None:
    """Migrate the empty benchmark database, then take every measurement in turn."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    report.figures["database"] = describe_database()
    progress(report.name, f"{report.figures['database']}")
    with tempfile.TemporaryDirectory(prefix="django_tasks_bench_logs_") as folder:
        logs = Path(folder)
        phases: list[Callable[[], None]] = [
            lambda: measure_enqueue(report, plan),
            lambda: measure_drains(report, plan, logs),
            lambda: measure_worker_statements(report, plan),
            lambda: measure_pickup(report, plan, logs),
        ]
        if plan.profile:
            phases.append(lambda: profile_hot_paths(report, plan))
        for phase in phases:
            try:
                phase()
            except Exception:  # report it, and measure what still can be
                report.problem(f"a measurement failed:\n{traceback.format_exc()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks._queue_measure")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default="database", help="the database's name in messages")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--single-calls", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--profile", type=int, default=0)
    options = parser.parse_args(argv)

    def stop(number: int, frame: Any) -> None:
        raise SystemExit(128 + number)  # unwinds through the blocks that kill workers

    signal.signal(signal.SIGTERM, stop)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    plan = Plan(
        tasks=options.tasks,
        single_calls=options.single_calls,
        repeat=options.repeat,
        latency_tasks=options.latency_tasks,
        idle_seconds=options.idle_seconds,
        timeout=options.timeout,
        profile=options.profile,
    )
    report = Report(name=options.name)
    try:
        measure(report, plan)
    finally:  # after SIGTERM too, so the figures measured so far are not lost
        options.out.write_text(
            json.dumps({"figures": report.figures, "problems": report.problems}, indent=2),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

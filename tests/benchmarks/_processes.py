"""Real `db_worker` processes for the queue benchmark: start, watch, reap, kill.

A worker's CPU time while it runs is read from `/proc/PID/stat`, and its peak RSS from
`VmHWM` in `/proc/PID/status`, sampled while it runs. Not `ru_maxrss`: the kernel
carries the high-water mark of the image a process replaced at `exec` into it, so every
worker started from the (large) benchmark process would report that process's RSS.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def worker_environment() -> dict[str, str]:
    """Return the environment of a worker: this process's database, the tests settings."""
    return {
        **os.environ,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }


class WorkerProcess:
    """One `python -m django db_worker --backend database ...` process and its log."""

    def __init__(self, log: Path, arguments: Sequence[str]) -> None:
        self.log = log
        self.started_at = time.perf_counter()
        with log.open("w") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", "db_worker", "--backend", "database", *arguments],
                env=worker_environment(),
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.exited_at: float | None = None
        self.peak_rss_kib = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def reap(self) -> bool:
        """Collect the process if it has exited; tell whether it has."""
        if self.exited_at is not None:
            return True
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.exited_at = time.perf_counter()
        # Reaped here, not by Popen: record the status so Popen knows it has exited.
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return True

    def sample_rss(self) -> None:
        """Note the process's RSS high-water mark so far (a no-op once it has exited)."""
        with suppress(OSError):  # exited, maybe not reaped yet
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    def cpu_seconds(self) -> float:
        """Return the user + system CPU time the running process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        # After the command name: state is field 3; utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        """Return the highest RSS high-water mark sampled, in MiB."""
        return self.peak_rss_kib / 1024

    def stop(self, timeout: float = 10) -> int | None:
        """Ask the worker to stop (SIGTERM); kill it if it has not exited in `timeout` s."""
        if not self.reap():
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while not self.reap() and time.monotonic() < deadline:
                time.sleep(0.01)
        self.kill()
        return self.returncode

    def kill(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.reap():
            return
        self.process.kill()
        while not self.reap():
            time.sleep(0.005)

    def unexpected_output(self) -> list[str]:
        """Return the lines the worker logged, but for its acknowledgement of SIGTERM.

        The workers run with `-v 0`, which logs warnings and errors only: in a benchmark
        where nothing fails, any such line is worth reporting.
        """
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if line.strip() and "worker_stopping" not in line]

    def log_tail(self, lines: int = 15) -> str:
        """Return the end of the worker's output, for a failure report."""
        text = self.log.read_text(errors="replace").strip()
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


@contextmanager
def worker_processes(
    count: int, arguments: Sequence[str], logs: Path
) -> Iterator[list[WorkerProcess]]:
    """Start `count` workers (`bench-1`, ...); kill those still running when the block exits."""
    workers: list[WorkerProcess] = []
    try:
        for number in range(1, count + 1):
            worker_id = f"bench-{number}"
            workers.append(
                WorkerProcess(logs / f"{worker_id}.log", ["--worker-id", worker_id, *arguments])
            )
        yield workers
    finally:
        for worker in workers:
            worker.kill()


def reap_all(workers: Sequence[WorkerProcess], timeout: float) -> bool:
    """Wait until every worker has exited; return False if `timeout` seconds pass first.

    Exits are seen within a millisecond; RSS is sampled every 10 ms meanwhile, so growth
    in a worker's last few milliseconds may be missed.
    """
    deadline = time.monotonic() + timeout
    next_sample = 0.0
    while not all([worker.reap() for worker in workers]):
        now = time.monotonic()
        if now > deadline:
            return False
        if now >= next_sample:
            for worker in workers:
                worker.sample_rss()
            next_sample = now + 0.01
        time.sleep(0.001)
    return True


def children_cpu_seconds() -> float:
    """Return the user + system CPU time of every child this process has reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

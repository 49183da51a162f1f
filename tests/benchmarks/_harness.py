"""Timing helpers shared by the benchmarks: `timeit` loops, medians, tables."""

from __future__ import annotations

import gc
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BenchSettings:
    """How long and how often to time each case."""

    repeat: int = 5
    """Timed runs per case; the median of them is reported."""
    min_time: float = 0.2
    """Seconds each timed run should last at least; sets the number of loops per run."""
    warmup: int = 200
    """Untimed calls before timing, so caches and lazily built models are warm."""
    quick: bool = False
    """A short run for CI smoke use: less work, fewer repeats."""
    databases: tuple[str, ...] = ()
    """The databases to run on, for benchmarks that use one; empty means every one."""
    profile: int = 0
    """Print this many of the hottest functions of the worker and of a bulk enqueue
    (queue benchmark); 0 profiles nothing."""


@dataclass(frozen=True)
class Timing:
    """Microseconds per call of one case, one value per timed run."""

    number: int
    runs_us: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.runs_us)

    @property
    def min_us(self) -> float:
        return min(self.runs_us)

    @property
    def max_us(self) -> float:
        return max(self.runs_us)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_us": round(self.median_us, 4),
            "min_us": round(self.min_us, 4),
            "max_us": round(self.max_us, 4),
            "runs_us": [round(value, 4) for value in self.runs_us],
            "number": self.number,
        }


def measure(func: Callable[[], object], settings: BenchSettings) -> Timing:
    """Time `func` as `timeit` does (GC off during runs); return µs per call for each run."""
    for _ in range(settings.warmup):
        func()
    gc.collect()
    timer = timeit.Timer(func)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= settings.min_time / 4:
            break
        number *= 10 if elapsed < settings.min_time / 40 else 2
    number = max(1, int(number * settings.min_time / elapsed))
    runs = timer.repeat(repeat=settings.repeat, number=number)
    return Timing(number=number, runs_us=[run / number * 1e6 for run in runs])


def environment() -> dict[str, str]:
    """Return the versions that matter for comparing numbers between machines."""
    import django
    import orjson
    import pydantic
    import pydantic_core

    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "django": django.get_version(),
        "pydantic": pydantic.VERSION,
        "pydantic_core": pydantic_core.__version__,
        "orjson": orjson.__version__,
    }


def machine_probe() -> dict[str, float]:
    """Time a fixed Python loop and small `fsync`s: how fast the machine runs right now.

    A shared machine's speed drifts within an hour; figures from runs whose probes
    differ are not comparable. The loop is `sorted(range(1000), key=lambda x: -x)`,
    best of 5 (µs); the `fsync` is of a 4 KB write in the temporary folder, median of
    20 (ms), which bounds how fast a database on that disk commits.

    The third probe is one of the issue's own yardsticks for these machines: single-row
    autocommit INSERTs into SQLite in WAL mode with `synchronous=NORMAL`, best of 3 runs
    of 5,000 (the issue measured about 62,000 a second). Its ratio to that figure says
    how much faster or slower than the issue's machine this run's machine was.
    """
    loop = timeit.Timer("sorted(r, key=lambda x: -x)", "r = range(1000)")
    number = 2000
    cpu_us = min(loop.repeat(repeat=5, number=number)) / number * 1e6
    syncs = []
    with tempfile.TemporaryFile() as probe:
        for _ in range(20):
            probe.write(b"x" * 4096)
            probe.flush()
            start = time.perf_counter()
            os.fsync(probe.fileno())
            syncs.append((time.perf_counter() - start) * 1e3)
    return {
        "python_loop_us": round(cpu_us, 1),
        "fsync_ms": round(statistics.median(syncs), 3),
        "sqlite_inserts_per_s": round(_sqlite_autocommit_inserts()),
    }


SQLITE_INSERTS_IN_ISSUE = 62_000
"""Single-row autocommit INSERTs a second into SQLite (WAL, `synchronous=NORMAL`), as the
performance issue measured them on its 2-core machine."""


def _sqlite_autocommit_inserts(count: int = 5000) -> float:
    rates = []
    with tempfile.TemporaryDirectory() as folder:
        connection = sqlite3.connect(os.path.join(folder, "probe.sqlite3"), isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, value TEXT)")
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(count):
                    connection.execute("INSERT INTO probe (value) VALUES (?)", ("x" * 50,))
                rates.append(count / (time.perf_counter() - start))
        finally:
            connection.close()
    return max(rates)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format rows as a plain-text table; the first column is left-aligned, others right."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [str(first).ljust(widths[0])]
        parts += [str(cell).rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])

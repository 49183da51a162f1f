"""Instructions per operation, counted by valgrind's callgrind: a measure that holds still.

The machines these benchmarks run on are shared, and their speed drifts by a fifth or
more from one minute to the next, so a change of a tenth in a rate cannot be told from
the drift. Callgrind counts the instructions a process executes (in user space: the
interpreter, the library, pydantic, SQLite; not the kernel's writes and fsyncs): the
same enqueue workload counted twice differed by 0.06-0.2 % (a few million
instructions), so an enqueue figure holds to about 1 %. The drain's does not: how the
worker batches its claims and writes depends on time, which valgrind slows fifty-fold,
and the same code's drain figure spread over 450,000-485,000 in five runs; compare drains
over several runs each. Each figure is a workload's count
(`_instructions_workload`, on SQLite) minus that of a run that did everything but the
counted operations, divided by their number.

Use it to compare two versions of the code side by side; the queue benchmark gives the
rates. Run with `./dev bench instructions [--quick] [--json PATH]`; it needs valgrind
(`apt-get install valgrind`) and reports itself skipped without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.benchmarks._harness import BenchSettings, environment

# (figure, mode, count, mode subtracted): the base with count 0 serves every enqueue.
FIGURES = (
    ("single enqueue, 3 args", "single-3", 1000, "single-3"),
    ("single enqueue, 10 args", "single-10", 1000, "single-3"),
    ("bulk enqueue, 3 args (per call)", "bulk-3", 10_000, "single-3"),
    ("bulk enqueue, 10 args (per call)", "bulk-10", 10_000, "single-3"),
    ("in-process drain (per no-op task)", "drain", 2000, "ready"),
)
QUICK_FIGURES = (("single enqueue, 3 args", "single-3", 50, "single-3"),)
_COLLECTED = re.compile(r"Collected : (\d+)")
RUN_TIMEOUT = 900
"""Seconds one callgrind run may take (the longest takes about 90 here)."""


def count_instructions(mode: str, count: int) -> int:
    """Run one workload under callgrind; return the instructions it executed."""
    root = Path(__file__).resolve().parents[2]
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "tests.benchmarks._instructions_workload",
        mode,
        str(count),
    ]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "0"}
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()  # valgrind runs the interpreter inside its own process
        process.communicate()
        raise RuntimeError(f"callgrind run of {mode} {count} ran past {RUN_TIMEOUT} s") from None
    found = _COLLECTED.search(stderr)
    if process.returncode != 0 or found is None:
        raise RuntimeError(
            f"callgrind run of {mode} {count} failed (exit {process.returncode}):\n{stderr[-2000:]}"
        )
    return int(found.group(1))


def run(settings: BenchSettings) -> dict[str, Any]:
    """Count each figure's instructions, print the table, and return the numbers."""
    if shutil.which("valgrind") is None:
        reason = "valgrind is not installed (apt-get install valgrind)"
        print(f"\ninstructions: skipped: {reason}")
        return {"skipped": reason}
    figures = QUICK_FIGURES if settings.quick else FIGURES
    runs = sorted(
        {(mode, count) for _, mode, count, _ in figures}
        | {(base, count if base == "ready" else 0) for _, _, count, base in figures}
    )
    # One run per core at a time: each is single-threaded and takes 30-90 s.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = dict(zip(runs, pool.map(lambda run: count_instructions(*run), runs), strict=True))
    per_operation = {
        name: (counted[(mode, count)] - counted[(base, count if base == "ready" else 0)]) / count
        for name, mode, count, base in figures
    }
    print("\ninstructions per operation (callgrind, user space, SQLite; lower is better)\n")
    width = max(len(name) for name in per_operation)
    for name, value in per_operation.items():
        print(f"{name:<{width}}  {value:>12,.0f}")
    print(f"\nbase run (set-up and warm-up): {counted[('single-3', 0)]:,} instructions")
    return {
        "unit": "instructions per operation",
        "environment": environment(),
        "figures": {name: round(value) for name, value in per_operation.items()},
        "runs": {f"{mode} {count}": total for (mode, count), total in counted.items()},
    }

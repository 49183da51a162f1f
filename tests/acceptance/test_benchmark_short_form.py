"""The benchmarks' short forms, end to end: their checks must pass, speed is not judged.

The queue benchmark makes its own SQLite database and starts real `db_worker`
processes, and the instructions benchmark runs its workloads on SQLite under valgrind,
so they run once, in the SQLite pass. Speed is reported by `./dev bench`, never
asserted here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from django.db import connection

from tests.acceptance.conftest import ROOT

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the benchmark makes its own SQLite database: runs once, in the SQLite pass",
)

FIGURES = (
    "single_enqueue_3",
    "single_enqueue_10",
    "bulk_enqueue_3",
    "bulk_enqueue_10",
    "drain_1",
    "drain_2",
    "inprocess_drain",
    "latency_p50_ms",
    "latency_p99_ms",
    "worker_empty_s",
)


def run_benchmark(arguments: list[str]) -> tuple[str, str]:
    """Run `python -m tests.benchmarks ARGUMENTS` to its end; return its stdout and stderr.

    In its own session: on a timeout the whole group goes (its workers, its measuring
    children, its callgrind runs), not only the benchmark's parent process.
    """
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    bench = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks", *arguments],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = bench.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(bench.pid, signal.SIGKILL)
        stdout, stderr = bench.communicate()
        pytest.fail(f"the short form ran past 600 s:\n{stdout[-3000:]}{stderr[-3000:]}")
    assert bench.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return stdout, stderr


def test_queue_benchmark__short_form_measures_every_figure_and_finds_no_problem(tmp_path):
    out = tmp_path / "bench.json"
    stdout, stderr = run_benchmark(
        ["queue", "--quick", "--databases", "sqlite", "--json", str(out), "--profile", "5"]
    )

    queue = json.loads(out.read_text(encoding="utf-8"))["queue"]
    # Problems include a task run twice or never, and warnings in a worker's log.
    assert queue["problems"] == []
    figures = queue["databases"]["sqlite"]
    assert {name: figures[name]["median"] > 0 for name in FIGURES} == dict.fromkeys(FIGURES, True)
    assert "machine probe, start / end" in stdout
    assert "times the issue's machine" in stdout
    assert all(probe["sqlite_inserts_per_s"] > 0 for probe in queue["machine_probe"].values())
    # The profiles of a drain and a bulk enqueue, each its 5 functions with the most own time.
    profiles = {key: figures[key] for key in ("profile_worker", "profile_bulk_enqueue_10")}
    assert {key: len(profile["top"]) for key, profile in profiles.items()} == dict.fromkeys(
        profiles, 5
    )
    for profile in profiles.values():
        own = [row["own_s"] for row in profile["top"]]
        assert own == sorted(own, reverse=True)
        assert 0 < sum(own) <= profile["seconds"]
    assert "own s    cum s" in stderr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instructions_benchmark__short_form_counts_a_single_enqueue(tmp_path):
    out = tmp_path / "bench.json"
    stdout, _ = run_benchmark(["instructions", "--quick", "--json", str(out)])

    result = json.loads(out.read_text(encoding="utf-8"))["instructions"]
    assert set(result["runs"]) == {"single-3 0", "single-3 50"}
    base, counted = result["runs"]["single-3 0"], result["runs"]["single-3 50"]
    # A single enqueue is hundreds of thousands of instructions, far above the noise.
    assert result["figures"] == {"single enqueue, 3 args": round((counted - base) / 50)}
    assert 50_000 < result["figures"]["single enqueue, 3 args"] < 5_000_000
    assert "instructions per operation" in stdout

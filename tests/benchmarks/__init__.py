"""Micro-benchmarks that print numbers; run them with `./dev bench` or `python -m tests.benchmarks`.

They are plain scripts, not tests: no file here matches pytest's `test_*.py`, so the
suite never collects them. Each benchmark is a module with a
`run(settings: BenchSettings) -> dict` function that prints a table and returns its numbers;
`__main__` lists them in `BENCHMARKS` and can write every result to a JSON file.

    python -m tests.benchmarks                 # every benchmark
    python -m tests.benchmarks enqueue         # one of them
    python -m tests.benchmarks enqueue --json bench.json --repeat 5 --min-time 0.2
    python -m tests.benchmarks queue --databases sqlite,postgresql --quick

A module may set `DEFAULT_REPEAT` (5 otherwise); `--quick` makes it 1 unless `--repeat`
is given, and asks each benchmark for its short form.
"""

from __future__ import annotations

BENCHMARKS: dict[str, str] = {
    "enqueue": "tests.benchmarks.enqueue",
    "queue": "tests.benchmarks.database_queue",
    "instructions": "tests.benchmarks.instructions",
}
"""Benchmark name -> module holding its `run` function (imported after `django.setup()`)."""

"""Micro-benchmarks that print numbers; run them with `./dev bench` or `python -m tests.benchmarks`.

They are plain scripts, not tests: no file here matches pytest's `test_*.py`, so the
suite never collects them. Each benchmark is a module with a
`run(settings: BenchSettings) -> dict` function that prints a table and returns its numbers;
`__main__` lists them in `BENCHMARKS` and can write every result to a JSON file.

    python -m tests.benchmarks                 # every benchmark
    python -m tests.benchmarks enqueue         # one of them
    python -m tests.benchmarks enqueue --json bench.json --repeat 5 --min-time 0.2
"""

from __future__ import annotations

BENCHMARKS: dict[str, str] = {
    "enqueue": "tests.benchmarks.enqueue",
}
"""Benchmark name -> module holding its `run` function (imported after `django.setup()`)."""

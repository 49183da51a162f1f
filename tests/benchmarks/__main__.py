"""Run benchmarks by name: `python -m tests.benchmarks [NAME ...] [--json PATH] [--quick]`."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks import BENCHMARKS
from tests.benchmarks._harness import BenchSettings
from tests.benchmarks.database_queue import DATABASES


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks", description="Run the django_tasks benchmarks."
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed runs per case (median shown; default: the benchmark's own, 1 with --quick)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds each timed micro-benchmark run lasts at least (default: 0.2)",
    )
    parser.add_argument(
        "--databases",
        default="",
        metavar="NAMES",
        help=f"comma-separated databases for the queue benchmark (default: {','.join(DATABASES)})",
    )
    parser.add_argument("--quick", action="store_true", help="a short run, for CI smoke use")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="queue benchmark: also profile an in-process drain and a 10-argument bulk "
        "enqueue on each database, and print their N functions with the most own time",
    )
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if options.profile < 0:
        parser.error("--profile must be 0 or more")
    if (options.repeat is not None and options.repeat < 1) or (
        options.min_time is not None and options.min_time <= 0
    ):
        parser.error("--repeat must be at least 1 and --min-time positive")
    options.databases = tuple(name for name in options.databases.split(",") if name)
    unknown = [name for name in options.databases if name not in DATABASES]
    if unknown:
        parser.error(f"unknown database {', '.join(unknown)}; choose from {', '.join(DATABASES)}")
    return options


def settings_for(module: Any, options: argparse.Namespace) -> BenchSettings:
    """Return the settings of one benchmark: the options, else its defaults."""
    repeat = options.repeat or (1 if options.quick else getattr(module, "DEFAULT_REPEAT", 5))
    min_time = options.min_time or (0.05 if options.quick else 0.2)
    return BenchSettings(
        repeat=repeat,
        min_time=min_time,
        quick=options.quick,
        databases=options.databases,
        profile=options.profile,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    results: dict[str, Any] = {}
    for name in options.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        results[name] = module.run(settings_for(module, options))
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {options.json}")
    failed = [name for name, result in results.items() if result.get("problems")]
    if failed:
        print(f"\nproblems found by: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

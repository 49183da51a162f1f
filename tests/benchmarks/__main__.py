"""Run benchmarks by name: `python -m tests.benchmarks [NAME ...] [--json PATH]`."""

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
    defaults = BenchSettings()
    parser.add_argument(
        "--repeat", type=int, default=defaults.repeat, help="timed runs per case (median shown)"
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=defaults.min_time,
        help="seconds each timed run lasts at least",
    )
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if options.repeat < 1 or options.min_time <= 0:
        parser.error("--repeat must be at least 1 and --min-time positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    settings = BenchSettings(repeat=options.repeat, min_time=options.min_time)
    results: dict[str, Any] = {}
    for name in options.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        results[name] = module.run(settings)
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {options.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

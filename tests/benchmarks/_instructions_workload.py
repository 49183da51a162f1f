"""One workload of the instructions benchmark, run under callgrind: `MODE COUNT`.

Sets up a fresh SQLite file (WAL, `synchronous=NORMAL`, as the queue benchmark's),
warms up as every mode does alike, then does COUNT of one thing:

- `single-3`, `single-10`: `enqueue()` calls of the 3- and 10-argument tasks;
- `bulk-3`, `bulk-10`: one `enqueue_many()` of COUNT calls;
- `ready`: one `enqueue_many()` of COUNT no-op tasks (what `drain` does before draining);
- `drain`: the same, then the library's worker drains them in this process.

The benchmark subtracts a run with COUNT 0 (or `ready` from `drain`): what is left is
the instructions of the COUNT operations alone.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

MODES = ("single-3", "single-10", "bulk-3", "bulk-10", "ready", "drain")


def main(mode: str, count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="django_tasks_instructions_"))
    # The test project's settings, always: `clear()` empties the results table.
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    try:
        run(mode, count)
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(folder, ignore_errors=True)


def run(mode: str, count: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from tests.benchmarks._queue_measure import cases, clear, enqueue_noops, in_process_worker

    call_command("migrate", verbosity=0)
    tasks = cases()
    for task_, args, kwargs in tasks.values():  # the same warm-up for every mode
        for _ in range(20):
            task_.enqueue(*args, **kwargs)
        task_.enqueue_many(task_.arguments(*args, **kwargs) for _ in range(20))
    enqueue_noops(20)
    in_process_worker().run()
    clear()
    if mode.startswith(("single", "bulk")):
        task_, args, kwargs = tasks[mode.split("-")[1]]
        if mode.startswith("single"):
            for _ in range(count):
                task_.enqueue(*args, **kwargs)
        elif count:
            calls = [task_.arguments(*args, **kwargs) for _ in range(count)]
            task_.enqueue_many(calls)
    elif count:
        enqueue_noops(count)
        if mode == "drain":
            in_process_worker().run()


if __name__ == "__main__":
    mode, count = sys.argv[1], int(sys.argv[2])
    if mode not in MODES:
        sys.exit(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    main(mode, count)

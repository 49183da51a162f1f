"""Run the reliability suite on each database and print what was tried and what survived.

    python -m tests.reliability [--long] [--databases sqlite,postgresql,mariadb] [-- PYTEST...]

`./dev soak` runs it with `--long`. Each database gets its own pytest run of
`tests/reliability` (pytest-django creates the test database, as in `./dev test`); the
tests append their rows to a JSON-lines file, and the table is printed at the end, as
Markdown, with each test's outcome. A database whose server does not answer is skipped
and named. The PostgreSQL server, which the long form restarts, is started again at the
end if it is down. Exit status 1 if any test failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATABASES = {
    "sqlite": ("", "sqlite:///"),
    "postgresql": ("POSTGRES_URL", "postgres://root@127.0.0.1:5432/test"),
    "mariadb": ("MARIADB_URL", "mysql://root@127.0.0.1:3306/test"),
}
ADMIN_ROW = {
    "fault": "admin security: view/change permissions, read-only detail, re-enqueue action",
    "database": "all",
    "tasks": "-",
    "ran": "-",
    "lost": "-",
    "twice": "-",
    "wedged": "-",
    "outcome": "see ./dev test",
    "notes": "tested in tests/integration/test_admin.py and tests/acceptance/"
    "test_admin_browser.py, not repeated here",
}
COLUMNS = [
    ("fault", "fault tried"),
    ("database", "database"),
    ("tasks", "tasks"),
    ("ran", "tasks run"),
    ("lost", "tasks lost"),
    ("twice", "run twice beyond the lease rule"),
    ("wedged", "workers wedged"),
    ("outcome", "test"),
    ("notes", "notes"),
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--long", action="store_true", help="the long form (./dev soak)")
    parser.add_argument(
        "--databases",
        default=",".join(DATABASES),
        help=f"comma-separated, from {', '.join(DATABASES)} (default: all)",
    )
    parser.add_argument("pytest", nargs="*", help="extra pytest arguments, after --")
    options = parser.parse_args(argv)
    options.databases = [name for name in options.databases.split(",") if name]
    unknown = [name for name in options.databases if name not in DATABASES]
    if unknown:
        parser.error(f"unknown database {', '.join(unknown)}; choose from {', '.join(DATABASES)}")
    return options


def url_of(name: str) -> str:
    variable, default = DATABASES[name]
    return os.environ.get(variable, default) if variable else default


def environment(url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def reachable(url: str) -> bool:
    check = (
        "import django; django.setup(); "
        "from django.db import connection; connection.ensure_connection()"
    )
    done = subprocess.run(
        [sys.executable, "-c", check],
        env=environment(url),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


def outcomes(junit: Path) -> dict[str, str]:
    """Return test name -> passed, FAILED, skipped or xfail, from pytest's JUnit XML."""
    if not junit.exists():
        return {}
    found = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        skipped = case.find("skipped")
        if kinds & {"failure", "error"}:
            found[case.get("name", "")] = "FAILED"
        elif skipped is not None:
            xfail = skipped.get("type") == "pytest.xfail"
            found[case.get("name", "")] = "xfail" if xfail else "skipped"
        else:
            found[case.get("name", "")] = "passed"
    return found


def ensure_postgres_running() -> None:
    """Start the local cluster again if a restart left it down (we are root here)."""
    folder = Path("/etc/postgresql")
    if os.geteuid() != 0 or not folder.is_dir():
        return
    for version in sorted(os.listdir(folder)):
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
        status = subprocess.run([*command, "status"], capture_output=True, check=False)
        if status.returncode != 0:
            print(f"starting PostgreSQL {version} again")
            subprocess.run([*command, "start"], check=False, timeout=120)


def run_database(
    name: str, options: argparse.Namespace, folder: Path
) -> tuple[list[dict[str, object]], bool]:
    """Run the suite on one database; return its rows and whether every test passed."""
    url = url_of(name)
    rows_file, junit = folder / f"{name}.jsonl", folder / f"{name}.xml"
    env = environment(
        url,
        TASKS_RELIABILITY="long" if options.long else "short",
        TASKS_RELIABILITY_REPORT=str(rows_file),
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/reliability",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEs",
        f"--junitxml={junit}",
        *options.pytest,
    ]
    print(f"\n== reliability, {'long' if options.long else 'short'} form, on {name} ({url})")
    started = time.monotonic()
    try:
        code = subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
    finally:
        if name == "postgresql":
            ensure_postgres_running()
    print(f"== {name}: {time.monotonic() - started:.0f} s")
    rows = []
    if rows_file.exists():
        rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line]
    results = outcomes(junit)
    for row in rows:
        row["outcome"] = results.get(str(row["test"]), "?")
    reported = {row["test"] for row in rows}
    for test, outcome in results.items():
        if outcome == "FAILED" and test not in reported:
            rows.append(
                {"fault": test, "database": name, "outcome": outcome, "notes": "no row written"}
            )
    return rows, code in (0, 5)


def cell(value: object) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key, "")) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    rows: list[dict[str, object]] = []
    skipped, failed = [], []
    with tempfile.TemporaryDirectory(prefix="tasks-reliability-") as scratch:
        for name in options.databases:
            if not reachable(url_of(name)):
                print(f"SKIPPED: {name}: no server at {url_of(name)}")
                skipped.append(name)
                continue
            database_rows, passed = run_database(name, options, Path(scratch))
            rows += database_rows
            if not passed:
                failed.append(name)
    rows.append(ADMIN_ROW)
    print(f"\n== What was tried and what survived ({'long' if options.long else 'short'} form)\n")
    print(table(rows))
    print(
        "\n'run twice beyond the lease rule': tasks whose side effect was written more than "
        "once without a lost attempt (attempts > 1 and a WorkerLost error) to explain it."
    )
    if skipped:
        print(f"Skipped (no server): {', '.join(skipped)}")
    if failed:
        print(f"FAILED on: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

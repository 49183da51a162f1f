"""The task-result admin in a real browser, on the examples project served by runserver.

The shop's database, its superuser, a failed `send_receipt` and the workers all live in
subprocesses of `examples/manage.py` on a SQLite file of this test's own; headless
Chromium (Debian's `chromium`, driven by Playwright) logs in, filters the list, reads the
traceback and re-enqueues the failure. Screenshots go to tests/output/<test name>/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import OUTPUT, ROOT, wait_for

pytestmark = pytest.mark.acceptance

# Debian's package; CHROMIUM_PATH points the test at another build of Chromium.
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Containers often have a small /dev/shm, which crashes Chromium's renderers.
    "--disable-dev-shm-usage",
]
MANAGE = ROOT / "examples" / "manage.py"
USERNAME, PASSWORD = "admin", "browser-test-password"
TIMEOUT_MS = 30_000

# Two orders placed with the code the order view runs: the `.invalid` address makes
# send_receipt raise UndeliverableEmail, the other one succeeds.
PLACE_ORDERS = """
from shop.models import Currency
from shop.orders import place_order
from shop.tasks import Customer
_, failing = place_order(Customer(name="Ada", email="ada@shop.invalid"), {"mug": 2}, Currency.EUR)
_, fine = place_order(Customer(name="Bob", email="bob@example.com"), {"poster": 1}, Currency.USD)
print("RESULT-IDS", failing.id, fine.id)
"""


@pytest.fixture
def browser_api() -> tuple[Any, Path]:
    """Return Playwright's sync API and Chromium's path, or skip when either is missing."""
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url and not database_url.startswith("sqlite:"):
        pytest.skip(
            "the browser test serves the examples project on its own SQLite file, whatever "
            "DATABASE_URL says; it runs in the SQLite pass"
        )
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` package "
            "(./dev test does when run as root) or set CHROMIUM_PATH"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    return sync_api, CHROMIUM


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Shop:
    """The examples project on one SQLite file: its commands, its server and its rows."""

    def __init__(self, database: Path, folder: Path) -> None:
        self.database = database
        self.folder = folder
        self.env = {
            key: value
            for key, value in os.environ.items()
            # The shop reads DATABASE_URL as PostgreSQL; the database suites set it.
            if key != "DATABASE_URL"
        } | {
            "DJANGO_SETTINGS_MODULE": "shop_project.settings",
            "SHOP_SQLITE_PATH": str(database),
            "SHOP_DEBUG": "1",  # runserver serves the admin's static files
            "SHOP_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            "PYTHONUNBUFFERED": "1",
        }
        self.server: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def manage(self, *arguments: str, timeout: float = 120) -> str:
        """Run `examples/manage.py` with `arguments`, assert it exits 0, return its output."""
        done = subprocess.run(
            [sys.executable, str(MANAGE), *arguments],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"manage.py {' '.join(arguments)} failed:\n{output}"
        return output

    def run_worker(self, worker_id: str) -> None:
        """Run `db_worker --batch` until no task is due, keeping its log."""
        output = self.manage(
            *("db_worker", "--batch", "--queue-name", "*", "--no-startup-delay"),
            *("--worker-id", worker_id, "-v", "2"),
        )
        (self.folder / f"{worker_id}.log").write_text(output)

    def start_server(self) -> None:
        """Start `runserver` on a free port and wait until the admin's login page answers."""
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        log = (self.folder / "runserver.log").open("wb")
        self.server = subprocess.Popen(
            [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()  # the child has its own copy

        def answers() -> bool:
            assert self.server is not None
            if self.server.poll() is not None:
                log_text = (self.folder / "runserver.log").read_text()
                raise AssertionError(f"runserver exited {self.server.returncode}:\n{log_text}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/admin/login/", timeout=2) as reply:
                    return bool(reply.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(answers, timeout=60, what="runserver to answer")

    def stop_server(self) -> None:
        """Stop runserver with Ctrl-C (so coverage, if any, is saved), or kill it."""
        if self.server is None or self.server.poll() is not None:
            return
        self.server.send_signal(signal.SIGINT)
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(10)

    def rows(self) -> list[dict[str, Any]]:
        """Return every task result row, oldest first, read straight from the SQLite file."""
        connection = sqlite3.connect(self.database, timeout=30)
        try:
            connection.row_factory = sqlite3.Row
            found = connection.execute(
                "SELECT * FROM django_tasks_database_dbtaskresult ORDER BY enqueued_at"
            ).fetchall()
        finally:
            connection.close()
        return [
            {
                **dict(row),
                "errors": json.loads(row["errors"]),
                "worker_ids": json.loads(row["worker_ids"]),
            }
            for row in found
        ]


@pytest.fixture
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    """The migrated shop with a superuser; its server, if started, is stopped at the end."""
    folder = OUTPUT / request.node.name.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink(missing_ok=True)  # a concurrent run of this test may have done it
    shop = Shop(tmp_path / "shop.sqlite3", folder)
    shop.manage("migrate", "--noinput")
    shop.manage("createsuperuser", "--noinput", "--username", USERNAME, "--email", "a@b.test")
    try:
        yield shop
    finally:
        shop.stop_server()


def id_of(row_id: str) -> str:
    """Return a stored UUID (SQLite keeps it as 32 hex digits) in its dashed form."""
    return str(uuid.UUID(row_id))


def test_admin__filter_failed_read_traceback_and_requeue_in_a_browser(
    browser_api: tuple[Any, Path], shop: Shop
) -> None:
    sync_api, executable = browser_api

    marker = shop.manage("shell", "-c", PLACE_ORDERS).split("RESULT-IDS", 1)[1].split()
    failing_id, fine_id = marker[0], marker[1]
    shop.run_worker("worker-1")
    before = {id_of(row["id"]): row for row in shop.rows()}
    assert {key: row["status"] for key, row in before.items()} == {
        failing_id: "FAILED",
        fine_id: "SUCCESSFUL",
    }

    shop.start_server()
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            shop.database.parent / "chromium-profile",  # a fresh profile for each run
            executable_path=str(executable),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1920, "height": 1000},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            expect = sync_api.expect
            expect.set_options(timeout=TIMEOUT_MS)

            # Log in: /admin/ redirects to the login form.
            page.goto(f"{shop.base_url}/admin/")
            page.fill("#id_username", USERNAME)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#site-name")).to_be_visible()
            expect(page.locator("#content h1")).to_have_text("Site administration")

            # The list of task results, filtered by status "Failed".
            page.get_by_role("link", name="Task results").click()
            rows = page.locator("#result_list tbody tr")
            expect(rows).to_have_count(2)
            page.locator("#changelist-filter").get_by_role("link", name="Failed").click()
            page.wait_for_url("**status__exact=FAILED**")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text(failing_id)
            expect(rows.first).to_contain_text("shop.tasks.send_receipt")
            expect(rows.first).to_contain_text("Failed")
            page.screenshot(path=shop.folder / "admin-list.png", full_page=True)

            # The failed result's page: its exception and traceback.
            rows.first.get_by_role("link", name=failing_id).click()
            expect(page.locator("#content h1")).to_have_text("View task result")
            errors = page.locator(".field-error_details")
            expect(errors).to_contain_text("shop.tasks.UndeliverableEmail")
            expect(errors).to_contain_text("Traceback (most recent call last)")
            expect(errors).to_contain_text("No mail server accepts mail for ada@shop.invalid.")
            expect(page.locator(".field-workers")).to_contain_text("worker-1")
            page.screenshot(path=shop.folder / "admin-detail.png", full_page=True)

            # Back on the filtered list, re-enqueue it with the admin action.
            page.go_back()
            page.wait_for_url("**status__exact=FAILED**")
            rows.first.locator("input.action-select").check()
            page.select_option("select[name=action]", label="Re-enqueue selected failed tasks")
            page.click("button[name=index]")
            expect(page.locator("ul.messagelist li.success")).to_have_text(
                "Re-enqueued 1 failed task; skipped 0 tasks that were not FAILED."
            )
            after_action = [row for row in shop.rows() if id_of(row["id"]) not in before]
            assert [row["status"] for row in after_action] == ["READY"]

            # A worker runs the new result; the same arguments fail the same way again.
            shop.run_worker("worker-2")
            after = {id_of(row["id"]): row for row in shop.rows()}
            (new_id,) = set(after) - set(before)
            page.reload()
            expect(rows).to_have_count(2)
            expect(rows.first).to_contain_text(new_id)  # newest first
            page.screenshot(path=shop.folder / "admin-list-after-requeue.png", full_page=True)
        finally:
            context.close()

    old, new = before[failing_id], after[new_id]
    assert after[failing_id] == old, "the re-enqueued result must stay as it was"
    assert after[fine_id] == before[fine_id]
    assert new["task_path"] == old["task_path"] == "shop.tasks.send_receipt"
    assert new["args_kwargs"] == old["args_kwargs"]
    assert new["status"] == "FAILED"
    assert new["worker_ids"] == ["worker-2"]
    assert [error["exception_class_path"] for error in new["errors"]] == [
        "shop.tasks.UndeliverableEmail"
    ]
    assert datetime.fromisoformat(new["enqueued_at"]) > datetime.fromisoformat(old["finished_at"])

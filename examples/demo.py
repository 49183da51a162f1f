"""Run the shop end to end: typed tasks through a real db_worker and back.

Recreate examples/demo.sqlite3, place orders with the code the order view runs, enqueue
every other kind of task in shop/tasks.py, start `manage.py db_worker` in a subprocess,
show progress until every task has finished, stop the worker with SIGTERM, and print one
result of each kind with its type. Exit 1 if anything is not as expected.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import django
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from django_tasks import TaskResult, TaskResultStatus

if TYPE_CHECKING:
    from shop.models import Order

EXAMPLES = Path(__file__).resolve().parent
DATABASE = EXAMPLES / "demo.sqlite3"
WORKER = [
    *(sys.executable, "manage.py", "db_worker", "--queue-name", "*"),
    *("--concurrency", "4", "--prefetch", "8", "--interval", "0.2", "--no-startup-delay"),
    *("-v", "0"),
]
RECEIPT_ARGUMENTS = ["int", "Customer", "list[LineItem]", "Currency", "datetime"]
POLL_SECONDS = 0.1
BAR_WIDTH = 30


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of task in the batch: its results so far, and how each must end."""

    label: str
    returns: type | None = None
    raises: type[BaseException] | None = None
    deferred: bool = False
    results: list[TaskResult[Any]] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> TaskResultStatus:
        """Return the status every result of this kind must end with."""
        return TaskResultStatus.FAILED if self.raises else TaskResultStatus.SUCCESSFUL


def configure() -> None:
    """Point Django, here and in the worker it starts, at the demo's own SQLite file."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop_project.settings"
    os.environ["SHOP_SQLITE_PATH"] = str(DATABASE)
    os.environ["SHOP_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ.pop("DATABASE_URL", None)
    django.setup()


def reset_database() -> None:
    """Delete the demo database with its WAL files, and migrate a new one."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0)


def new_kinds() -> dict[str, Kind]:
    """Return an empty Kind for each kind of task the demo enqueues."""
    from shop import tasks
    from shop.models import Order

    return {
        "receipt": Kind("send_receipt (on commit)", returns=tasks.Receipt),
        "bounce": Kind("send_receipt (bounced)", raises=tasks.UndeliverableEmail),
        "charge": Kind("charge_card", returns=uuid.UUID),
        "delivery": Kind("schedule_delivery (async)", returns=date),
        "inventory": Kind("sync_inventory (context)", returns=tasks.InventorySync),
        "report": Kind("sales_report (reports, prio -10)", returns=tasks.SalesReport),
        "review": Kind("ask_for_review (deferred 1-3 s)", returns=datetime, deferred=True),
        "stock": Kind("reserve_stock (model, retried)", returns=Order),
    }


def place_orders(kinds: dict[str, Kind], count: int) -> list[Order]:
    """Place orders as the order view does; every tenth customer's address bounces."""
    from shop.models import CATALOGUE, Currency
    from shop.orders import place_order
    from shop.tasks import Customer

    rng = random.Random(14)
    orders: list[Order] = []
    for n in range(count):
        domain = "shop.invalid" if n % 10 == 3 else "example.com"
        customer = Customer(name=f"Customer {n}", email=f"customer{n}@{domain}")
        quantities = {sku: rng.randint(0, 3) for sku in CATALOGUE} | {"mug": rng.randint(1, 3)}
        order, receipt = place_order(customer, quantities, rng.choice(list(Currency)))
        kinds["bounce" if domain == "shop.invalid" else "receipt"].results.append(receipt)
        orders.append(order)
    return orders


def enqueue_follow_ups(kinds: dict[str, Kind], orders: list[Order]) -> None:
    """Enqueue a card charge, a delivery booking and an inventory sync per order line."""
    from shop import tasks
    from shop.models import Currency

    for order in orders:
        charge = tasks.charge_card.enqueue(uuid.uuid4(), order.total, Currency(order.currency))
        kinds["charge"].results.append(charge)
        kinds["delivery"].results.append(tasks.schedule_delivery.enqueue(order.pk, order.placed_at))
        kinds["stock"].results.append(tasks.reserve_stock.enqueue(order))
        for line in order.lines.all():
            kinds["inventory"].results.append(tasks.sync_inventory.enqueue(line.sku, line.quantity))


def enqueue_reports_and_reviews(kinds: dict[str, Kind], orders: list[Order]) -> None:
    """Enqueue a week of sales reports, then a review request per order, due in 1 to 3 s."""
    from shop import tasks

    today = timezone.now().date()
    for days_ago in range(7):
        kinds["report"].results.append(tasks.sales_report.enqueue(today - timedelta(days_ago)))
    for n, order in enumerate(orders):
        later = tasks.ask_for_review.using(run_after=timedelta(seconds=1 + n % 3))
        kinds["review"].results.append(later.enqueue(order.pk, order.email))


def enqueue_batch(order_count: int) -> list[Kind]:
    """Enqueue every kind of task and return them by kind."""
    kinds = new_kinds()
    orders = place_orders(kinds, order_count)
    enqueue_follow_ups(kinds, orders)
    enqueue_reports_and_reviews(kinds, orders)
    return list(kinds.values())


class Progress:
    """Draw a progress bar: in place on a terminal, a plain line every 5 s otherwise."""

    def __init__(self, total: int, stream: IO[str] = sys.stdout) -> None:
        self.total, self.stream = total, stream
        self.tty = stream.isatty()
        self.width = 0
        self.started = self.last_line = time.monotonic()

    def show(self, finished: int, failed: int, *, final: bool = False) -> None:
        """Draw the counts, unless off a terminal and drawn less than 5 s ago."""
        now = time.monotonic()
        if not (self.tty or final or now - self.last_line >= 5):
            return
        self.last_line = now
        filled = BAR_WIDTH * finished // self.total
        rate = finished / max(now - self.started, 1e-9)
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {finished}/{self.total} finished, "
            f"{failed} failed, {rate:.0f} tasks/s"
        )
        self.width = max(self.width, len(line))  # Blank out the rest of a longer line.
        line = line.ljust(self.width)
        self.stream.write(f"\r{line}" if self.tty and not final else f"\r{line}\n")
        self.stream.flush()


def finished_counts() -> tuple[int, int]:
    """Return how many tasks in the table have finished, and how many of those failed."""
    from django_tasks.backends.database.models import DBTaskResult

    rows = DBTaskResult.objects.order_by().values_list("status").annotate(Count("id"))
    counts = Counter(dict(rows))
    failed = counts[TaskResultStatus.FAILED]
    return failed + counts[TaskResultStatus.SUCCESSFUL], failed


def wait_until_finished(total: int, worker: subprocess.Popen[bytes], timeout: float) -> bool:
    """Show progress until every task has finished; False on timeout or a dead worker."""
    progress = Progress(total)
    deadline = time.monotonic() + timeout
    while True:
        finished, failed = finished_counts()
        done = finished == total
        if done or worker.poll() is not None or time.monotonic() > deadline:
            progress.show(finished, failed, final=True)
            return done
        progress.show(finished, failed)
        time.sleep(POLL_SECONDS)


def stop_worker(worker: subprocess.Popen[bytes]) -> int:
    """Send SIGTERM, as systemd or Kubernetes would, and return the worker's exit code."""
    if worker.poll() is None:
        print("Sending SIGTERM to the worker.")
        worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        return -signal.SIGKILL


def problem_with(kind: Kind, result: TaskResult[Any]) -> str | None:
    """Return what is wrong with one finished result of `kind`, or None."""
    if result.status != kind.status:
        return f"{kind.label}: {result.id} is {result.status}, expected {kind.status}"
    if kind.raises is not None and result.exception_class is not kind.raises:
        return f"{kind.label}: {result.id} raised {result.exception_class}, not {kind.raises}"
    if kind.returns is not None and type(result.return_value) is not kind.returns:
        return f"{kind.label}: {result.id} returned a {type(result.return_value)}"
    if kind.deferred and not ran_when_due(result):
        return f"{kind.label}: {result.id} started before its run_after"
    return None


def ran_when_due(result: TaskResult[Any]) -> bool:
    """Tell whether a deferred result started at or after its `run_after` time."""
    run_after, started_at = result.task.run_after, result.started_at
    return isinstance(run_after, datetime) and started_at is not None and started_at >= run_after


def refreshed(kinds: list[Kind]) -> list[Kind]:
    """Return the kinds with every result read again from the database."""
    return [
        dataclasses.replace(kind, results=[result.refresh() for result in kind.results])
        for kind in kinds
    ]


def type_name(value: Any) -> str:
    """Return the dotted name of the type of `value`."""
    return f"{type(value).__module__}.{type(value).__qualname__}"


def short_type(value: Any) -> str:
    """Return the name of the type of `value`, with the type of a list's first item."""
    name = type(value).__name__
    return f"{name}[{type(value[0]).__name__}]" if isinstance(value, list) and value else name


def last_line(text: str | None) -> str:
    """Return the last non-blank line of `text`, such as a traceback's exception."""
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def table_row(kind: Kind) -> list[str]:
    """Return a kind's row: label, count, statuses, and its first result's outcome."""
    sample = kind.results[0]
    if sample.status == TaskResultStatus.SUCCESSFUL:
        outcome = f"{sample.return_value!r}  [{type_name(sample.return_value)}]"
    else:
        outcome = last_line(sample.traceback)
    statuses = ", ".join(sorted({str(result.status) for result in kind.results}))
    return [kind.label, str(len(kind.results)), statuses, outcome]


def print_table(kinds: list[Kind]) -> None:
    """Print one row per kind, columns aligned, the outcome last and unpadded."""
    rows = [["task", "n", "status", "return value [its type] / last traceback line"]]
    rows += [table_row(kind) for kind in kinds]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2])]
        print("  ".join([*cells, row[3]]))


def argument_types(receipts: Kind) -> list[str]:
    """Print and return the argument types of a receipt task read back from the database."""
    types = [short_type(argument) for argument in receipts.results[0].args]
    print(f"\nsend_receipt's arguments, read back from the database: {', '.join(types)}")
    return types


def run(order_count: int, timeout: float) -> list[str]:
    """Enqueue the batch, drain it with a real worker, and return every problem found."""
    started = time.monotonic()
    kinds = enqueue_batch(order_count)
    total = sum(len(kind.results) for kind in kinds)
    print(f"Enqueued {total} tasks of {len(kinds)} kinds in {time.monotonic() - started:.1f} s.")
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(WORKER, stdout=log, stderr=subprocess.STDOUT, cwd=EXAMPLES)
        print(f"Started in examples/: python {shlex.join(WORKER[1:])} (pid {worker.pid}).")
        drained = wait_until_finished(total, worker, timeout)
        code = stop_worker(worker)
        print(f"The worker exited {code}.\n")
        problems = report(kinds, drained, code)
        log.seek(0)
        if problems:
            print(f"Worker output:\n{log.read().decode(errors='replace')}", file=sys.stderr)
    return problems


def report(kinds: list[Kind], drained: bool, code: int) -> list[str]:
    """Print a table of the results, and return the problems found."""
    problems = [] if code == 0 else [f"the worker exited {code}, not 0"]
    if not drained:
        return [*problems, "not every task finished in time"]
    kinds = refreshed(kinds)
    print_table(kinds)
    if argument_types(kinds[0]) != RECEIPT_ARGUMENTS:
        problems.append(f"send_receipt's arguments are not {RECEIPT_ARGUMENTS}")
    problems += report_retries(kinds[-1])
    checks = (problem_with(kind, result) for kind in kinds for result in kind.results)
    return [*problems, *(problem for problem in checks if problem)]


def report_retries(stock: Kind) -> list[str]:
    """Print how many reservations needed a retry; every third order's should have."""
    retried = [result for result in stock.results if result.attempts == 2]
    print(
        f"reserve_stock: {len(retried)} of {len(stock.results)} succeeded on attempt 2 after "
        f"{last_line(retried[0].traceback) if retried else 'no error'}"
    )
    expected = sum(1 for result in stock.results if result.return_value.pk % 3 == 0)
    return [] if len(retried) == expected else [f"{len(retried)} retried, expected {expected}"]


def main() -> int:
    """Run the demo and return its exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=60, help="orders to place (default 60)")
    parser.add_argument("--timeout", type=float, default=45, help="seconds to drain (45)")
    options = parser.parse_args()
    if options.orders < 10:
        parser.error("--orders must be at least 10, so that some receipts bounce.")
    started = time.monotonic()
    configure()
    reset_database()
    problems = run(options.orders, options.timeout)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print(f"\n{'FAILED' if problems else 'OK'} in {time.monotonic() - started:.1f} s.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

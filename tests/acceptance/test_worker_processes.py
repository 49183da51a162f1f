"""Real worker processes: typed round trips, many workers, signals, kills, bad rows."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count

from django_tasks import TaskResultStatus
from django_tasks.backends.database.models import DBTaskResult
from tests import tasks
from tests.acceptance.conftest import insert_row, wait_for
from tests.models import Run

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]


def on_database(task):
    return task.using(backend="database")


def status_of(result_id) -> str:
    return DBTaskResult.objects.get(id=result_id).status


def test_worker__typed_values_round_trip_through_the_database(start_worker):
    items = [tasks.LineItem(sku="a", price=Decimal("1.10"), quantity=2)]
    customer = tasks.Customer(
        name="Ada",
        joined=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        address=tasks.Address(street="Main", number=1),
        tags=frozenset({"vip"}),
    )
    when = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    result = on_database(tasks.typed_roundtrip).enqueue(items, customer, when=when)

    worker = start_worker("--batch")

    assert worker.wait() == 0, worker.output()
    finished = result.refresh()
    assert finished.status == TaskResultStatus.SUCCESSFUL, finished.traceback
    assert finished.return_value == {
        "when": when,
        "item": items[0],
        "customer": customer,
        "amount": Decimal("1.10"),
    }
    assert type(finished.return_value["amount"]) is Decimal
    assert type(finished.return_value["item"]) is tasks.LineItem
    assert finished.args == [items, customer]
    assert finished.kwargs == {"when": when}
    assert finished.worker_ids == ["worker-1"]


def test_workers__four_drain_5000_tasks_each_exactly_once(start_worker):
    count = 5000
    task = on_database(tasks.record_run)
    ids = {task.enqueue(f"run-{n}").id for n in range(count)}

    workers = [start_worker("--batch", "--concurrency", "2", "--prefetch", "8") for _ in range(4)]

    assert [worker.wait(240) for worker in workers] == [0, 0, 0, 0]
    assert Run.objects.count() == count
    assert Run.objects.values("key").distinct().count() == count
    statuses = dict(DBTaskResult.objects.values_list("status").annotate(Count("id")))
    assert statuses == {TaskResultStatus.SUCCESSFUL: count}
    assert {str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)} == ids
    assert len(set(Run.objects.values_list("pid", flat=True))) > 1


def test_worker__killed_mid_task_is_finished_by_another_after_the_lease(start_worker):
    result = on_database(tasks.slow).enqueue("kill", 2.0)
    doomed = start_worker(worker_id="doomed")
    wait_for(lambda: Run.objects.filter(key="kill:start").exists(), what="the task to start")

    doomed.signal(signal.SIGKILL)
    doomed.wait()
    rescuer = start_worker(worker_id="rescuer")
    wait_for(lambda: status_of(result.id) == TaskResultStatus.SUCCESSFUL, timeout=30)

    finished = result.refresh()
    assert finished.attempts == 2
    assert finished.worker_ids == ["doomed", "rescuer"]
    assert [error.exception_class_path for error in finished.errors] == [
        "django_tasks.exceptions.WorkerLost"
    ]
    assert "Worker doomed stopped renewing its lease" in finished.errors[0].traceback
    assert list(Run.objects.order_by("id").values_list("key", flat=True)) == [
        "kill:start",
        "kill:start",
        "kill:end",
    ]
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0


def test_worker__sigterm_lets_the_running_task_finish_and_exits_0(start_worker):
    running = on_database(tasks.slow).enqueue("term", 1.0)
    waiting = on_database(tasks.record_run).enqueue("never-started")
    worker = start_worker("--prefetch", "1")
    wait_for(lambda: Run.objects.filter(key="term:start").exists(), what="the task to start")

    worker.signal(signal.SIGTERM)

    assert worker.wait() == 0, worker.output()
    assert running.refresh().status == TaskResultStatus.SUCCESSFUL
    assert Run.objects.filter(key="term:end").exists()
    left = DBTaskResult.objects.get(id=waiting.id)
    assert (left.status, left.worker_id, left.worker_ids) == (TaskResultStatus.READY, None, [])
    assert "worker_stopping signal=SIGTERM graceful=true" in worker.output()


def test_worker__second_signal_hands_the_task_back_at_once(start_worker):
    result = on_database(tasks.slow).enqueue("twice", 30.0)
    worker = start_worker()
    wait_for(lambda: Run.objects.filter(key="twice:start").exists(), what="the task to start")

    worker.signal(signal.SIGINT)
    wait_for(lambda: "graceful=true" in worker.output(), what="the first signal to register")
    worker.signal(signal.SIGINT)

    assert worker.wait(10) == 1, worker.output()
    row = DBTaskResult.objects.get(id=result.id)
    assert (row.status, row.worker_id, row.worker_ids) == (
        TaskResultStatus.READY,
        None,
        ["worker-1"],
    )
    assert "stopped at once by a second signal" in row.errors[0]["traceback"]


BAD_ROWS = {
    "os.system": (
        '{"args": ["touch /tmp/pwned"], "kwargs": {}}',
        "'os.system' is not a registered task",
    ),
    "subprocess.call": (
        '{"args": [["true"]], "kwargs": {}}',
        "'subprocess.call' is not a registered task",
    ),
    "django.core.management.call_command": (
        '{"args": ["flush"], "kwargs": {}}',
        "'django.core.management.call_command' is not a registered task",
    ),
    "no.such.module.task": ('{"args": [], "kwargs": {}}', "is not a registered task"),
    "tests.tasks.no_parameters": ('{"args": [], "kwargs": {}}', "is not a registered task"),
    "tests.tasks.add": ("this is not json", "are not valid JSON"),
    "tests.tasks.record_run": ('{"positional": []}', "are not an object with an 'args' list"),
    "tests.tasks.measure": (
        '{"args": [{"value": "lots"}], "kwargs": {}}',
        "'measurement.value': Input should be a valid number",
    ),
    "tests.tasks.positional_only": (
        '{"args": [1, 2], "kwargs": {}}',
        "takes 1 positional argument but 2",
    ),
}


def test_worker__bad_rows_fail_with_their_reason_and_the_worker_goes_on(start_worker):
    bad = {path: insert_row(path, payload) for path, (payload, _) in BAD_ROWS.items()}
    good = on_database(tasks.add).enqueue(2, 3)

    worker = start_worker("--batch")

    assert worker.wait() == 0, worker.output()
    for path, row_id in bad.items():
        row = DBTaskResult.objects.get(id=row_id)
        assert row.status == TaskResultStatus.FAILED, path
        [error] = row.errors
        assert error["exception_class_path"] == "django_tasks.exceptions.InvalidTask", path
        assert BAD_ROWS[path][1] in error["traceback"], (path, error["traceback"])
    assert good.refresh().return_value == 5


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="pg_terminate_backend is PostgreSQL's"
)
def test_worker__survives_its_connections_being_terminated(start_worker):
    worker = start_worker("--interval", "0.2")
    first = on_database(tasks.record_run).enqueue("before")
    wait_for(lambda: status_of(first.id) == TaskResultStatus.SUCCESSFUL)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1
    second = on_database(tasks.record_run).enqueue("after")

    wait_for(lambda: status_of(second.id) == TaskResultStatus.SUCCESSFUL, timeout=30)
    assert worker.process.poll() is None, worker.output()
    assert "database_unavailable" in worker.output() or "listen_failed" in worker.output()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_worker__idle_postgresql_worker_is_woken_by_notify(start_worker):
    worker = start_worker("--interval", "60")
    warm_up = on_database(tasks.record_run).enqueue("warm-up")
    wait_for(lambda: status_of(warm_up.id) == TaskResultStatus.SUCCESSFUL, timeout=70)

    result = on_database(tasks.record_run).enqueue("woken")

    # Polling every 60 s could not pick it up this fast; only the NOTIFY can.
    wait_for(lambda: status_of(result.id) == TaskResultStatus.SUCCESSFUL, timeout=5)
    row = DBTaskResult.objects.get(id=result.id)
    assert (row.started_at - row.enqueued_at).total_seconds() < 1
    # A bulk enqueue is one COPY, which fires the same trigger.
    task = on_database(tasks.record_run)
    bulk = task.enqueue_many([task.arguments("bulk-1"), task.arguments("bulk-2")])
    for each in bulk:
        wait_for(lambda each=each: status_of(each.id) == TaskResultStatus.SUCCESSFUL, timeout=5)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_worker__retries_with_backoff_then_succeeds(start_worker):
    result = on_database(tasks.backs_off).enqueue("retry")
    worker = start_worker("--interval", "0.1")

    wait_for(lambda: status_of(result.id) == TaskResultStatus.SUCCESSFUL, timeout=30)

    finished = result.refresh()
    assert (finished.attempts, len(finished.errors), finished.return_value) == (3, 2, 3)
    times = [Run.objects.get(key=f"retry:{attempt}").created_at for attempt in (1, 2, 3)]
    assert (times[1] - times[0]).total_seconds() >= 0.3
    assert (times[2] - times[1]).total_seconds() >= 0.6
    assert "task_retried" in worker.output()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_worker__model_argument_arrives_fresh_and_a_deleted_row_fails(start_worker):
    kept = Run.objects.create(key="kept", pid=1)
    gone = Run.objects.create(key="gone", pid=1)
    fresh = on_database(tasks.run_key).enqueue(kept)
    missing = on_database(tasks.run_key).enqueue(gone)
    Run.objects.filter(pk=kept.pk).update(pid=7)
    Run.objects.filter(pk=gone.pk).delete()

    worker = start_worker("--batch")

    assert worker.wait() == 0, worker.output()
    assert fresh.refresh().return_value == "kept:7"
    failed = missing.refresh()
    assert failed.status == TaskResultStatus.FAILED
    assert f"tests.Run with primary key {gone.pk} does not exist" in failed.traceback

"""A large bulk enqueue validates the next chunk of calls while the database stores the last."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from pydantic import AfterValidator

import django_tasks
from django_tasks import _signatures
from django_tasks.backends.database import overlap
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.serializers import OrjsonSerializer
from tests import tasks
from tests.conftest import DATABASE, drain, tasks_setting
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

CHUNKED = pytest.mark.skipif(
    "connection.vendor != 'sqlite'",
    reason="only SQLite stores a bulk enqueue chunk by chunk as the next is validated",
)


@pytest.fixture
def backend():
    return django_tasks.task_backends["database"]


def many_calls(task: Any, count: int) -> list[Any]:
    return [task.arguments(n, 2 * n) for n in range(count)]


@CHUNKED
def test_store__stores_each_call_once_in_order_as_one_enqueue_would(backend):
    task = tasks.add.using(backend="database")
    calls = many_calls(task, 2 * overlap.CHUNK + 500)
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    stored = overlap.store(backend, backend._resolve(task), calls, now)

    assert stored is not None
    assert [(r.args, r.kwargs) for r in stored] == [([n, 2 * n], {}) for n in range(2500)]
    rows = list(DBTaskResult.objects.order_by("enqueued_at", "pk").values("id", "args_kwargs"))
    assert len(rows) == len({r.id for r in stored}) == 2500
    by_id = {str(row["id"]): row["args_kwargs"] for row in rows}
    for result, (args, kwargs) in zip(stored, calls, strict=True):
        _, data = backend.prepare(task, args, kwargs)
        assert by_id[result.id] == (data.decode() if isinstance(data, bytes) else data)
        assert result.enqueued_at == now
    with connection.cursor() as cursor:  # inserted in the order of the calls
        table = connection.ops.quote_name(DBTaskResult._meta.db_table)
        cursor.execute(f"SELECT id FROM {table} ORDER BY rowid")
        assert [row[0] for row in cursor.fetchall()] == [r.id.replace("-", "") for r in stored]


def test_enqueue_many__of_a_large_batch_sends_one_signal_per_call_and_runs_each(
    backend, signal_log
):
    task = tasks.add.using(backend="database")
    results = task.enqueue_many(many_calls(task, overlap.CHUNK + 1))

    assert signal_log.events == [("enqueued", "READY", type(backend))] * (overlap.CHUNK + 1)
    drain(backend, prefetch=500)
    assert [r.refresh().return_value for r in results] == [3 * n for n in range(overlap.CHUNK + 1)]


@CHUNKED
def test_enqueue_many__a_bad_call_in_a_later_chunk_stores_nothing_and_is_named(backend):
    task = tasks.add.using(backend="database")
    calls = many_calls(task, 3 * overlap.CHUNK)
    calls[2345] = task.arguments("two", 1)  # type: ignore[arg-type]

    with transaction.atomic():
        Run.objects.create(key="before", pid=0)
        with pytest.raises(django_tasks.InvalidTaskError) as caught:
            task.enqueue_many(calls)
        after = task.enqueue(1, 1)  # the connection and the outer transaction go on

    assert str(caught.value).startswith("1 of the calls to task 'tests.tasks.add' are invalid")
    assert [error["loc"][:3] for error in caught.value.errors] == [("call", 2345, "a")]
    assert [str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)] == [after.id]
    assert Run.objects.filter(key="before").exists()
    assert not [t for t in threading.enumerate() if t.name == "django_tasks-enqueue_many"]


@CHUNKED
def test_enqueue_many__a_database_error_midway_stores_nothing_and_stops_the_helper(backend):
    task = tasks.add.using(backend="database")
    inserts = 0

    def second_insert_fails(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal inserts
        if sql.startswith("INSERT"):
            inserts += 1
            if inserts == 2:
                raise DatabaseError("the server went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(second_insert_fails), pytest.raises(DatabaseError):
        task.enqueue_many(many_calls(task, 3 * overlap.CHUNK))

    assert DBTaskResult.objects.count() == 0
    assert not [t for t in threading.enumerate() if t.name == "django_tasks-enqueue_many"]


def test_store__keeps_to_the_usual_path_where_another_thread_could_run_project_code(backend):
    plain = tasks.add.using(backend="database")
    looked_up = tasks.checks_the_database.using(backend="database")
    now = datetime.now(UTC)

    # Too few calls to overlap anything; a validator of the project's.
    assert overlap.store(backend, plain, many_calls(plain, overlap.CHUNK), now) is None
    if connection.vendor != "sqlite":  # COPY, or a server that shares the cores
        calls = many_calls(plain, overlap.CHUNK + 1)
        assert overlap.store(backend, plain, calls, now) is None
    calls = [looked_up.arguments(n) for n in range(overlap.CHUNK + 1)]
    assert overlap.store(backend, looked_up, calls, now) is None
    assert DBTaskResult.objects.count() == 0


class ProjectSerializer(OrjsonSerializer):
    """A project's serializer: its code might read what only the caller's thread has."""


def test_store__keeps_to_the_usual_path_with_a_projects_serializer():
    setting = tasks_setting(DATABASE, OPTIONS={"SERIALIZER": f"{__name__}.ProjectSerializer"})
    with override_settings(TASKS=setting):
        backend = django_tasks.task_backends["default"]
        task = tasks.add.using(backend="default")
        calls = many_calls(task, overlap.CHUNK + 1)

        assert overlap.store(backend, task, calls, datetime.now(UTC)) is None
        assert len(task.enqueue_many(calls)) == DBTaskResult.objects.count() == 1001


@pytest.mark.parametrize(
    ("annotation", "built_in"),
    [
        (int, True),
        (list[dict[str, datetime | None]], True),
        (tuple[int, ...], True),
        (Literal["a", 1], True),
        (Annotated[int, AfterValidator(abs)], False),
        (Any, False),
        (Run, False),
        (list[Run], False),
        (tasks.Customer, False),
    ],
)
def test_built_in__only_pythons_own_types(annotation, built_in):
    assert _signatures._built_in(annotation) is built_in


class _Chunks:
    """Prepare chunk `i` as `[i]`, recording the thread that did."""

    def __init__(self) -> None:
        self.threads: dict[int, int] = {}

    def __call__(self, index: int) -> list[Any]:
        self.threads[index] = threading.get_ident()
        return [index]


def test_ahead__the_helper_prepares_the_next_chunk_while_one_is_stored():
    chunks = _Chunks()
    ahead = overlap._Ahead(chunks, 5)
    assert ahead.start()
    got = []
    for prepared in ahead:
        got.extend(prepared)
        time.sleep(0.05)  # "storing": lets the helper run
    ahead.stop()

    assert got == [0, 1, 2, 3, 4]
    main = threading.get_ident()
    assert chunks.threads[0] == main
    assert all(chunks.threads[index] != main for index in range(1, 5))


def test_ahead__the_caller_prepares_every_chunk_when_the_helper_never_runs():
    chunks = _Chunks()
    ahead = overlap._Ahead(chunks, 4)  # never started

    assert [index for prepared in ahead for index in prepared] == [0, 1, 2, 3]
    assert set(chunks.threads.values()) == {threading.get_ident()}
    ahead.stop()


def test_ahead__a_chunk_that_fails_on_the_helper_raises_in_the_caller():
    def prepare(index: int) -> list[Any]:
        if index == 2:
            raise ValueError("chunk 2 is bad")
        return [index]

    ahead = overlap._Ahead(prepare, 4)
    assert ahead.start()
    got: list[Any] = []

    def store_each() -> None:
        for prepared in ahead:
            got.extend(prepared)
            time.sleep(0.05)

    with pytest.raises(ValueError, match="chunk 2 is bad"):
        store_each()
    ahead.stop()

    assert got == [0, 1]
    assert not ahead._thread.is_alive()

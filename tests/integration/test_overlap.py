"""A large bulk enqueue validates the next chunk of calls while the database stores the last."""

from __future__ import annotations

import asyncio
import enum
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from pydantic import AfterValidator

import django_tasks
from django_tasks import _signatures
from django_tasks.backends.database import overlap
from django_tasks.backends.database.backend import DatabaseBackend
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


def chunked(backend: Any, task: Any, calls: list[Any]) -> bool:
    """Tell whether `enqueue_many(calls)` takes the chunked path (on SQLite, it must)."""
    return overlap._applies(backend, backend._resolve(task), calls, backend.db_alias())


@pytest.fixture
def helper_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of each helper thread that prepared a chunk."""
    names: list[str] = []
    help_ = overlap._Ahead._help

    def recording(self: Any) -> None:
        names.append(threading.current_thread().name)
        help_(self)

    monkeypatch.setattr(overlap._Ahead, "_help", recording)
    return names


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
    calls = many_calls(task, overlap.CHUNK + 1)
    assert chunked(backend, task, calls) is (connection.vendor == "sqlite")
    results = task.enqueue_many(calls)

    assert signal_log.events == [("enqueued", "READY", type(backend))] * (overlap.CHUNK + 1)
    drain(backend, prefetch=500)
    assert [r.refresh().return_value for r in results] == [3 * n for n in range(overlap.CHUNK + 1)]


@CHUNKED
def test_enqueue_many__a_bad_call_in_a_later_chunk_stores_nothing_and_is_named(backend):
    task = tasks.add.using(backend="database")
    calls = many_calls(task, 3 * overlap.CHUNK)
    assert chunked(backend, task, calls)
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

    calls = many_calls(task, 3 * overlap.CHUNK)
    assert chunked(backend, task, calls)
    with connection.execute_wrapper(second_insert_fails), pytest.raises(DatabaseError):
        task.enqueue_many(calls)

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


class Color(enum.Enum):
    RED = "red"


class ProjectSerializer(OrjsonSerializer):
    """A project's serializer: its code might read what only the caller's thread has."""


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"SERIALIZER": f"{__name__}.ProjectSerializer"}, id="projects-serializer"),
        pytest.param({"BULK_HELPER_THREAD": False}, id="turned-off"),
    ],
)
def test_store__keeps_to_the_usual_path_for_these_backend_options(options):
    with override_settings(TASKS=tasks_setting(DATABASE, OPTIONS=options)):
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
        (bytes | set[str] | frozenset[int], True),
        (list, False),
        (Literal[Color.RED], False),
        (list[Annotated[int, AfterValidator(abs)]], False),
        (Decimal, False),
        (Color, False),
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
    """Prepare chunk `i` as `[i]`, recording the thread that did; fail at `bad`."""

    def __init__(self, bad: int | None = None) -> None:
        self.threads: dict[int, str] = {}
        self.bad = bad

    def __call__(self, index: int) -> list[Any]:
        self.threads[index] = threading.current_thread().name
        if index == self.bad:
            raise ValueError(f"chunk {index} is bad")
        return [index]


def store_each(ahead: overlap._Ahead, got: list[Any]) -> None:
    """Store each chunk once the helper has taken the next, as a slow INSERT would let it."""
    for index, prepared in enumerate(ahead):
        got.extend(prepared)
        deadline = time.monotonic() + 10
        while ahead._next < min(index + 2, ahead._count) and time.monotonic() < deadline:
            time.sleep(0.001)


def test_ahead__the_helper_prepares_the_next_chunk_while_one_is_stored():
    chunks = _Chunks()
    ahead = overlap._Ahead(chunks, 5)
    assert ahead.start()
    got: list[Any] = []
    store_each(ahead, got)
    ahead.stop()

    assert got == [0, 1, 2, 3, 4]
    helper = "django_tasks-enqueue_many"
    assert chunks.threads == {0: "MainThread", 1: helper, 2: helper, 3: helper, 4: helper}
    assert not ahead._thread.is_alive()


def test_ahead__the_helper_never_runs_more_than_one_chunk_ahead():
    chunks = _Chunks()
    ahead = overlap._Ahead(chunks, 6)
    assert ahead.start()
    taken_ahead = []
    for index, _ in enumerate(ahead):
        time.sleep(0.02)  # a slow INSERT: the helper has all the time it wants
        taken_ahead.append(ahead._next - index - 1)
    ahead.stop()

    assert max(taken_ahead) <= 1
    assert sorted(chunks.threads) == list(range(6))


def test_ahead__the_caller_prepares_every_chunk_when_the_helper_never_runs():
    chunks = _Chunks()
    ahead = overlap._Ahead(chunks, 4)  # never started

    assert [index for prepared in ahead for index in prepared] == [0, 1, 2, 3]
    assert set(chunks.threads.values()) == {"MainThread"}
    ahead.stop()


def test_ahead__a_chunk_that_fails_on_the_helper_raises_in_the_caller():
    chunks = _Chunks(bad=2)
    ahead = overlap._Ahead(chunks, 4)
    assert ahead.start()
    got: list[Any] = []

    with pytest.raises(ValueError, match="chunk 2 is bad"):
        store_each(ahead, got)
    ahead.stop()

    assert chunks.threads[2] == "django_tasks-enqueue_many"
    assert got == [0, 1]
    assert not ahead._thread.is_alive()


@CHUNKED
def test_enqueue_many__the_helper_validates_chunks_of_a_large_batch(backend, helper_threads):
    task = tasks.add.using(backend="database")
    calls = many_calls(task, 3 * overlap.CHUNK)

    results = task.enqueue_many(calls)

    assert helper_threads == ["django_tasks-enqueue_many"]
    assert DBTaskResult.objects.count() == len(results) == 3000


@CHUNKED
def test_enqueue_many__bad_calls_in_several_chunks_are_each_named(backend):
    task = tasks.add.using(backend="database")
    calls = many_calls(task, 3 * overlap.CHUNK)
    assert chunked(backend, task, calls)
    for index in (0, 999, 1000, 2999):
        calls[index] = task.arguments(1.5, 1)  # type: ignore[arg-type]

    with pytest.raises(django_tasks.InvalidTaskError) as caught:
        task.enqueue_many(calls)

    assert str(caught.value).startswith("4 of the calls to task 'tests.tasks.add' are invalid")
    assert [error["loc"][1] for error in caught.value.errors] == [0, 999, 1000, 2999]
    assert caught.value.__context__ is None  # not the chunk's error, with its own indexes
    assert DBTaskResult.objects.count() == 0


@CHUNKED
def test_enqueue_many__with_no_thread_to_be_had_takes_the_usual_path(backend, monkeypatch):
    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    task = tasks.add.using(backend="database")
    calls = many_calls(task, 2 * overlap.CHUNK)
    assert chunked(backend, task, calls)
    monkeypatch.setattr(threading.Thread, "start", refused)

    results = task.enqueue_many(calls)

    assert [r.args for r in results] == [[n, 2 * n] for n in range(2000)]
    assert DBTaskResult.objects.count() == 2000


@CHUNKED
def test_aenqueue_many__of_a_large_batch_is_stored_chunk_by_chunk(backend, helper_threads):
    task = tasks.add.using(backend="database")

    results = asyncio.run(task.aenqueue_many(many_calls(task, 2 * overlap.CHUNK)))

    assert helper_threads == ["django_tasks-enqueue_many"]
    assert DBTaskResult.objects.count() == len(results) == 2000


@CHUNKED
def test_enqueue_many__with_the_standard_librarys_json_is_stored_chunk_by_chunk(helper_threads):
    setting = tasks_setting(
        DATABASE, OPTIONS={"SERIALIZER": "django_tasks.serializers.JsonSerializer"}
    )
    with override_settings(TASKS=setting):
        task = tasks.add.using(backend="default")
        results = task.enqueue_many(many_calls(task, 2 * overlap.CHUNK))

    assert helper_threads == ["django_tasks-enqueue_many"]
    stored = dict(DBTaskResult.objects.values_list("id", "args_kwargs"))
    assert json.loads(stored[uuid.UUID(results[1500].id)]) == {"args": [1500, 3000], "kwargs": {}}


class _OwnIds(DatabaseBackend):
    def new_result_id(self) -> str:
        return str(uuid.uuid4())


def test_store__keeps_to_the_usual_path_with_ids_of_a_projects_backend():
    backend_path = f"{__name__}._OwnIds"
    with override_settings(TASKS=tasks_setting(backend_path)):
        backend = django_tasks.task_backends["default"]
        task = tasks.add.using(backend="default")

        assert overlap.store(backend, task, many_calls(task, 1001), datetime.now(UTC)) is None


@CHUNKED
def test_store__when_the_helper_never_runs_the_caller_does_everything(backend, monkeypatch):
    monkeypatch.setattr(overlap._Ahead, "_help", lambda self: None)  # started, never runs
    task = tasks.add.using(backend="database")
    calls = many_calls(task, 2 * overlap.CHUNK + 1)

    stored = overlap.store(backend, backend._resolve(task), calls, datetime.now(UTC))

    assert stored is not None
    assert [r.args for r in stored] == [[n, 2 * n] for n in range(2001)]
    assert {str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)} == {
        r.id for r in stored
    }


@pytest.mark.parametrize(("value", "refused"), [(True, False), (False, False), ("sometimes", True)])
def test_bulk_helper_thread__is_an_option_that_takes_a_boolean(value, refused):
    from django_tasks import checks as task_checks

    setting = tasks_setting(DATABASE, OPTIONS={"BULK_HELPER_THREAD": value})
    with override_settings(TASKS=setting):
        errors = task_checks.check_backends()

    assert [("BULK_HELPER_THREAD" in error.msg) for error in errors] == ([True] if refused else [])

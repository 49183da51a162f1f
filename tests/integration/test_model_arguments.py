"""Django model instances as typed task arguments and results: they travel as keys."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import django_tasks
from django_tasks import InvalidTaskError, TaskResultStatus
from django_tasks.backends.database import DatabaseBackend
from django_tasks.backends.database.models import DBTaskResult
from tests import tasks
from tests.conftest import DATABASE, IMMEDIATE, drain, tasks_setting
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=[IMMEDIATE, DATABASE], ids=["immediate", "database"])
def backend(request):
    with override_settings(TASKS=tasks_setting(request.param)):
        yield django_tasks.task_backends["default"]


def finish(backend, result):
    if isinstance(backend, DatabaseBackend):
        drain(backend)
        return backend.get_result(result.id)
    return result


def test_model_argument__travels_as_its_key_and_arrives_fresh(backend):
    run = Run.objects.create(key="a", pid=1)
    run.pid = 99  # not saved: the task fetches the row as the database has it

    result = tasks.run_key.enqueue(run)
    finished = finish(backend, result)

    assert finished.return_value == "a:1"
    assert finished.args == [run]
    assert finished.args[0] is not run
    if isinstance(backend, DatabaseBackend):
        assert (
            DBTaskResult.objects.get(id=result.id).args_kwargs
            == f'{{"args":[{run.pk}],"kwargs":{{}}}}'
        )


def test_model_argument__unsaved_instance_is_refused(backend):
    with pytest.raises(InvalidTaskError) as caught:
        tasks.run_key.enqueue(Run(key="x", pid=0))

    assert "'run': Input is an unsaved tests.Run instance; save it first" in str(caught.value)


def test_model_argument__other_types_are_refused(backend):
    with pytest.raises(
        InvalidTaskError, match=r"'run': Input should be a saved tests\.Run instance"
    ):
        tasks.run_key.enqueue(5)


def test_model_argument__deleted_row_fails_the_task_naming_model_and_key(backend, settings):
    run = Run.objects.create(key="gone", pid=1)
    if isinstance(backend, DatabaseBackend):
        result = tasks.run_key.enqueue(run)
        Run.objects.filter(pk=run.pk).delete()
        finished = finish(backend, result)
    else:  # the Immediate backend runs at once: delete inside the same call is impossible
        settings.TASKS = tasks_setting("django_tasks.backends.dummy.DummyBackend")
        dummy = django_tasks.task_backends["default"]
        tasks.run_key.enqueue(run)
        Run.objects.filter(pk=run.pk).delete()
        [finished] = dummy.run_ready()

    assert finished.status == TaskResultStatus.FAILED
    assert f"tests.Run with primary key {run.pk} does not exist" in finished.traceback


def test_model_argument__optional_takes_none_and_instances(backend):
    run = Run.objects.create(key="maybe", pid=1)

    assert finish(backend, tasks.maybe_run.enqueue(None)).return_value is None
    assert finish(backend, tasks.maybe_run.enqueue(run)).return_value == "maybe"


def test_model_argument__list_is_fetched_with_one_query(backend):
    runs = [Run.objects.create(key=f"k{n}", pid=n) for n in range(5)]
    signature = tasks.run_keys.signature

    with CaptureQueriesContext(connection) as queries:
        args, _ = signature.load_call({"args": [[r.pk for r in reversed(runs)]], "kwargs": {}})

    assert len(queries.captured_queries) == 1
    assert [r.key for r in args[0]] == ["k4", "k3", "k2", "k1", "k0"]
    assert finish(backend, tasks.run_keys.enqueue(runs)).return_value == [f"k{n}" for n in range(5)]


def test_model_argument__missing_rows_of_a_list_are_named(backend):
    runs = [Run.objects.create(key=f"k{n}", pid=n) for n in range(2)]
    Run.objects.filter(pk=runs[1].pk).delete()

    with pytest.raises(InvalidTaskError, match=rf"primary keys \[{runs[1].pk}\] do not exist"):
        tasks.run_keys.signature.load_call({"args": [[r.pk for r in runs]], "kwargs": {}})


def test_model_return__comes_back_as_an_instance(backend):
    finished = finish(backend, tasks.make_run.enqueue("made"))

    assert isinstance(finished.return_value, Run)
    assert finished.return_value == Run.objects.get(key="made")

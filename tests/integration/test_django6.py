"""Django 6's `django.tasks` and django_tasks together: one set of backends, signals, errors.

- code written for `django.tasks` runs on our backends, with our validation and worker;
- our API refuses `django.tasks`' own backends, naming ours;
- the signals are Django's, and the exceptions derive from Django's.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import django
import pytest

django_tasks_api = pytest.importorskip(
    "django.tasks", reason="django.tasks is new in Django 6.0; Django 5.2 has no such API"
)

from django.core import checks  # noqa: E402
from django.db import transaction  # noqa: E402
from django.tasks import exceptions as django_exceptions  # noqa: E402
from django.tasks import signals as django_signals  # noqa: E402
from django.test import override_settings  # noqa: E402

import django_tasks  # noqa: E402
from django_tasks import (  # noqa: E402
    InvalidTaskBackendError,
    InvalidTaskError,
    TaskResultStatus,
    exceptions,
    task,
)
from django_tasks import checks as task_checks  # noqa: E402
from django_tasks.backends.database.models import DBTaskResult  # noqa: E402
from django_tasks.tasks import registered_task  # noqa: E402
from tests import django6_tasks, tasks  # noqa: E402
from tests.conftest import DATABASE, DUMMY, IMMEDIATE, drain, tasks_setting  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)
HAS_TASK_KWARGS = django.VERSION >= (6, 1)


def by_hand(**options):
    """Return a `django.tasks.Task` made directly, as Django 6.0 requires every field."""
    fields = {
        "priority": 0,
        "backend": "default",
        "queue_name": "default",
        "run_after": None,
        "takes_context": False,
        **options,
    }
    return django_tasks_api.Task(func=django6_tasks.by_hand, **fields)


# Code that uses django.tasks, on our backends.


def test_django_task__on_our_backend_is_our_registered_task():
    assert isinstance(django6_tasks.later, django_tasks.Task)
    assert registered_task("tests.django6_tasks.later") is django6_tasks.later
    assert registered_task("tests.django6_tasks.not_a_task") is None


def test_django_task__arguments_are_validated_strictly():
    with pytest.raises(django_exceptions.InvalidTask) as caught:
        django6_tasks.later.enqueue("tomorrow", by=3)

    assert isinstance(caught.value, InvalidTaskError)
    assert [error["loc"] for error in caught.value.errors] == [("when",), ("by",)]


def test_django_task__runs_with_typed_arguments_and_result():
    when = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

    result = django6_tasks.later.enqueue(when, by=timedelta(hours=2))

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert (result.args, result.kwargs) == ([when], {"by": timedelta(hours=2)})


def test_django_task__untyped_parameters_take_json():
    assert django6_tasks.untyped.enqueue([1, 2], b={"k": "v"}).return_value == [
        [1, 2],
        {"k": "v"},
    ]
    with pytest.raises(InvalidTaskError, match="is not JSON-compatible"):
        django6_tasks.untyped.enqueue(object())


def test_django_task__takes_context():
    assert django6_tasks.attempt.enqueue("first").return_value == "first:1"


def test_django_task__nested_function_is_refused():
    def inner() -> None: ...

    with pytest.raises(django_exceptions.InvalidTask, match="must be defined at module level"):
        django_tasks_api.task(inner)


def test_django_task__runs_on_the_database_worker_and_reads_back_typed():
    backend = django_tasks.task_backends["database"]

    result = django6_tasks.total.enqueue(Decimal("2.50"), quantity=3)
    drain(backend)

    assert DBTaskResult.objects.get(id=result.id).task_path == "tests.django6_tasks.total"
    for fetched in (
        django6_tasks.total.get_result(result.id),
        django_tasks_api.task_backends["database"].get_result(result.id),
    ):
        assert fetched.status == TaskResultStatus.SUCCESSFUL
        assert fetched.return_value == Decimal("7.50")
        assert type(fetched.return_value) is Decimal
        assert fetched.task is django6_tasks.total


def test_worker__refuses_a_function_no_task_was_made_for():
    backend = django_tasks.task_backends["database"]
    result = django6_tasks.total.enqueue(Decimal(1), quantity=1)
    DBTaskResult.objects.filter(id=result.id).update(task_path="tests.django6_tasks.not_a_task")

    drain(backend)

    row = DBTaskResult.objects.get(id=result.id)
    assert row.status == TaskResultStatus.FAILED
    assert (
        "'tests.django6_tasks.not_a_task' is not a registered task" in row.errors[-1]["traceback"]
    )


@pytest.mark.skipif(not HAS_TASK_KWARGS, reason="Django 6.0's @task takes no extra options")
def test_django_task__enqueue_on_commit_passes_through_djangos_decorator():
    on_commit = django_tasks_api.task(enqueue_on_commit=True, backend="database")(
        django6_tasks.by_hand
    )
    with transaction.atomic():
        result = on_commit.enqueue(4)
        assert not DBTaskResult.objects.filter(id=result.id).exists()

    assert DBTaskResult.objects.get(id=result.id).status == TaskResultStatus.READY


def test_django_task_made_by_hand__is_enqueued_as_our_equivalent_task():
    made = by_hand(priority=5)

    result = made.enqueue(21)

    assert result.return_value == 42
    assert isinstance(result.task, django_tasks.Task)
    assert (result.task.func, result.task.priority) == (made.func, 5)
    assert registered_task("tests.django6_tasks.by_hand") is not None


def test_django_task_made_by_hand__is_validated_by_our_backend():
    with pytest.raises(django_exceptions.InvalidTask, match="queue 'nowhere' is not in QUEUES"):
        by_hand(queue_name="nowhere")
    with pytest.raises(InvalidTaskError, match="Input should be a valid integer"):
        by_hand().enqueue("21")


@pytest.mark.parametrize("backend", [DUMMY, DATABASE], ids=["dummy", "database"])
def test_django_task_made_by_hand__finds_its_result(backend):
    with override_settings(TASKS=tasks_setting(backend)):
        made = by_hand()
        result = made.enqueue(1)

        assert made.get_result(result.id).id == result.id
        with pytest.raises(django_exceptions.TaskResultMismatch):
            tasks.add.get_result(result.id)


def test_handlers__share_one_backend_instance_per_alias(dummy):
    assert django_tasks_api.task_backends["default"] is dummy
    result = tasks.add.enqueue(1, 2)

    assert django_tasks_api.default_task_backend.results == [result]


def test_handlers__an_alias_only_django_knows_of_is_left_alone(settings):
    settings.TASKS = {
        **tasks_setting(IMMEDIATE),
        "djangos": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    }

    assert task_checks.check_backends() == []
    assert (
        django_tasks_api.task_backends["djangos"]
        .enqueue(
            django_tasks_api.Task(
                func=django6_tasks.not_a_task,
                priority=0,
                backend="djangos",
                queue_name="default",
                run_after=None,
                takes_context=False,
            ),
            [3],
            {},
        )
        .return_value
        == 3
    )
    assert registered_task("tests.django6_tasks.not_a_task") is None


# Our API, with django.tasks' backends.


@pytest.mark.parametrize(
    ("path", "ours"),
    [
        pytest.param(
            "django.tasks.backends.immediate.ImmediateBackend",
            "django_tasks.backends.immediate.ImmediateBackend",
            id="immediate",
        ),
        pytest.param(
            "django.tasks.backends.dummy.DummyBackend",
            "django_tasks.backends.dummy.DummyBackend",
            id="dummy",
        ),
    ],
)
def test_our_api__refuses_djangos_backends_naming_ours(settings, path, ours):
    settings.TASKS = {"default": {"BACKEND": path}}

    with pytest.raises(InvalidTaskBackendError) as caught:
        django_tasks.task_backends["default"]
    assert str(caught.value) == (
        f"TASKS['default']['BACKEND'] names '{path}', a django.tasks backend, which runs "
        "tasks without validating their arguments or decoding them into their declared "
        f"types, as every django_tasks task needs. Name '{ours}' instead: it does the same "
        "job, and code using django.tasks can use it too."
    )
    with pytest.raises(InvalidTaskBackendError, match=r"a django\.tasks backend"):
        task(tasks.add.func)


def test_our_api__refuses_another_django_tasks_backend(settings):
    settings.TASKS = {"default": {"BACKEND": "tests.django6_tasks.ThirdPartyBackend"}}

    with pytest.raises(InvalidTaskBackendError, match="under another alias"):
        django_tasks.task_backends["default"]


def test_our_api__defaults_to_our_immediate_backend_without_a_tasks_setting():
    code = (
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['django_tasks'])\n"
        "django.setup()\n"
        "import django.tasks, django_tasks\n"
        "print(type(django_tasks.task_backends['default']).__module__)\n"
        "print(type(django.tasks.task_backends['default']).__module__)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert output.split() == ["django_tasks.backends.immediate", "django.tasks.backends.immediate"]


# One set of signals and exceptions.


def test_signals__are_djangos():
    assert django_tasks.task_enqueued is django_signals.task_enqueued
    assert django_tasks.task_started is django_signals.task_started
    assert django_tasks.task_finished is django_signals.task_finished


def test_signals__a_django_receiver_hears_our_tasks(immediate):
    heard = []

    def receiver(sender, task_result, **kwargs):
        heard.append((sender, task_result.status))

    django_signals.task_finished.connect(receiver)
    try:
        tasks.add.enqueue(1, 2)
    finally:
        django_signals.task_finished.disconnect(receiver)

    assert heard == [(type(immediate), TaskResultStatus.SUCCESSFUL)]


class Records(logging.Handler):
    """Keep every record of one logger, whatever the logging configuration says."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(name)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Records:
        self.level_before = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


def test_signals__djangos_receivers_log_our_tasks_once_on_their_logger(immediate):
    with Records("django.tasks") as djangos, Records("django_tasks") as ours:
        result = django6_tasks.fails.enqueue("boom")

    path = "tests.django6_tasks.fails"
    assert [(r.levelname, r.getMessage()) for r in djangos.records] == [
        ("DEBUG", f"Task id={result.id} path={path} enqueued backend=default"),
        ("INFO", f"Task id={result.id} path={path} state=RUNNING"),
        ("ERROR", f"Task id={result.id} path={path} state=FAILED"),
    ]
    failed = djangos.records[-1]
    assert failed.exc_info
    assert failed.exc_info[0] is ValueError
    assert [(r.levelname, r.getMessage().split()[0]) for r in ours.records] == [
        ("DEBUG", "task_enqueued"),
        ("INFO", "task_started"),
        ("ERROR", "task_finished"),
    ]


@pytest.mark.parametrize(
    ("ours", "djangos"),
    [
        pytest.param(exceptions.TaskException, django_exceptions.TaskException, id="root"),
        pytest.param(exceptions.InvalidTask, django_exceptions.InvalidTask, id="task"),
        pytest.param(
            exceptions.InvalidTaskBackend, django_exceptions.InvalidTaskBackend, id="backend"
        ),
        pytest.param(
            exceptions.TaskResultDoesNotExist,
            django_exceptions.TaskResultDoesNotExist,
            id="does-not-exist",
        ),
        pytest.param(
            exceptions.TaskResultMismatch, django_exceptions.TaskResultMismatch, id="mismatch"
        ),
    ],
)
def test_exceptions__derive_from_djangos(ours, djangos):
    assert issubclass(ours, djangos)


def test_exceptions__django_code_catches_ours(dummy):
    with pytest.raises(django_exceptions.TaskResultDoesNotExist):
        django_tasks_api.default_task_backend.get_result("nope")
    with pytest.raises(django_exceptions.InvalidTask):
        tasks.add.enqueue("1", 2)


# System checks run once per backend.


def test_checks__a_backend_is_checked_once(settings):
    settings.TASKS = {
        "default": {"BACKEND": DATABASE, "OPTIONS": {"DATABASE": "nowhere"}},
    }

    backend_checks = {"django_tasks.E001", "django_tasks.E003", "django_tasks.E004"}

    messages = [m.id for m in checks.run_checks() if m.id in backend_checks]

    assert messages == ["django_tasks.E004"]


# The README's example.


def test_readme__django6_example_runs_as_described(immediate):
    from tests.unit.test_readme import snippets

    scope: dict[str, object] = {"__name__": "tests.readme_django6"}
    exec(snippets()["django6"], scope)
    charge = scope["charge"]

    assert isinstance(charge, django_tasks.Task)
    result = charge.enqueue(7, Decimal("1.5"))
    assert result.return_value == Decimal("3.0")
    assert type(result.return_value) is Decimal
    with pytest.raises(django_exceptions.InvalidTask):
        charge.enqueue("7", 1.5)

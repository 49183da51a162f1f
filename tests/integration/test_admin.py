"""The admin of the database backend's result table, driven through Django's test client.

Rows come from real enqueues on the DatabaseBackend, run by a real worker in this process.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.forms.models import model_to_dict
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import django_tasks
from django_tasks import InvalidTaskBackend, TaskResultStatus
from django_tasks.backends.database.models import DBTaskResult
from tests import tasks
from tests.conftest import DATABASE, IMMEDIATE, drain, tasks_setting

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:django_tasks_database_dbtaskresult_changelist"
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def backend():
    setting = {
        **tasks_setting(DATABASE),
        "other": {"BACKEND": DATABASE, "QUEUES": ["default"]},
        "memory": {"BACKEND": IMMEDIATE},
    }
    with override_settings(TASKS=setting):
        yield django_tasks.task_backends["default"]


def run(*results: django_tasks.TaskResult[Any]) -> list[DBTaskResult]:
    """Drain every backend the results were enqueued on; return their rows, in order."""
    for alias in sorted({result.backend for result in results}):
        drain(django_tasks.task_backends[alias])
    return [DBTaskResult.objects.get(id=result.id) for result in results]


def change_url(row: DBTaskResult) -> str:
    return reverse("admin:django_tasks_database_dbtaskresult_change", args=[row.pk])


def listed_ids(response) -> list[str]:
    return [str(row.id) for row in response.context["cl"].result_list]


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def post_action(client, action: str, rows: list[DBTaskResult], **extra: str):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(row.pk) for row in rows], **extra}
    return client.post(reverse(CHANGELIST), data)


def rendered_fields(response) -> dict[str, str]:
    """Return what the change page shows for each field, by field name."""
    adminform = response.context["adminform"]
    return {
        field.field["name"]: str(field.contents())
        for fieldset in adminform
        for line in fieldset
        for field in line
    }


@pytest.fixture
def staff_client(client, django_user_model):
    """Return a function that logs in a staff user holding the given model permissions."""

    def login(*actions: str):
        user = django_user_model.objects.create_user(username="staff", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="django_tasks_database",
                codename__in=[f"{action}_dbtaskresult" for action in actions],
            )
        )
        client.force_login(user)
        return client

    return login


# The list


def test_changelist__shows_the_columns_newest_first(backend, admin_client):
    added, failed, reported = run(
        tasks.add.enqueue(1, 2), tasks.fails.enqueue("boom"), tasks.in_queue.enqueue(3)
    )

    response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert [
        (str(row.id), row.task_path, row.status, row.queue_name, row.priority, row.attempts)
        for row in response.context["cl"].result_list
    ] == [
        (str(reported.id), "tests.tasks.in_queue", "SUCCESSFUL", "reports", 10, 1),
        (str(failed.id), "tests.tasks.fails", "FAILED", "default", 0, 1),
        (str(added.id), "tests.tasks.add", "SUCCESSFUL", "default", 0, 1),
    ]
    columns = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', response.content.decode())
    assert columns == [
        "id",
        "task_path",
        "status",
        "queue_name",
        "priority",
        "enqueued_at",
        "finished_at",
        "attempts",
    ]


def test_changelist__queries_do_not_grow_with_rows_or_load_payloads(backend, admin_client):
    run(tasks.fails.enqueue("boom"))
    with CaptureQueriesContext(connection) as one_row:
        admin_client.get(reverse(CHANGELIST))
    run(*[tasks.fails.enqueue("boom") for _ in range(4)], tasks.add.enqueue(1, 2))
    with CaptureQueriesContext(connection) as six_rows:
        response = admin_client.get(reverse(CHANGELIST))

    assert len(listed_ids(response)) == 6
    assert len(six_rows.captured_queries) == len(one_row.captured_queries)
    # Tracebacks and payloads can be large, and no column shows them.
    assert not [query for query in six_rows.captured_queries if "args_kwargs" in query["sql"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"status__exact": "FAILED"}, ["failed"], id="status"),
        pytest.param({"queue_name__exact": "reports"}, ["reported"], id="queue"),
        pytest.param({"task_path__exact": "tests.tasks.add"}, ["other", "added"], id="task"),
        pytest.param({"backend_name__exact": "other"}, ["other"], id="backend"),
    ],
)
def test_changelist__filters(backend, admin_client, query, expected):
    rows = dict(
        zip(
            ["added", "failed", "reported", "other"],
            run(
                tasks.add.enqueue(1, 2),
                tasks.fails.enqueue("boom"),
                tasks.in_queue.enqueue(3),
                tasks.add.using(backend="other").enqueue(3, 4),
            ),
            strict=True,
        )
    )

    response = admin_client.get(reverse(CHANGELIST), query)

    assert listed_ids(response) == [str(rows[name].id) for name in expected]


def test_changelist__filters_offer_the_stored_values(backend, admin_client):
    run(
        tasks.add.enqueue(1, 2),
        tasks.in_queue.enqueue(3),
        tasks.add.using(backend="other").enqueue(3, 4),
    )

    response = admin_client.get(reverse(CHANGELIST))

    choices = {
        spec.title: [choice["display"] for choice in spec.choices(response.context["cl"])]
        for spec in response.context["cl"].filter_specs
    }
    assert choices == {
        "status": ["All", "Ready", "Running", "Failed", "Successful"],
        "queue name": ["All", "default", "reports"],
        "task path": ["All", "tests.tasks.add", "tests.tasks.in_queue"],
        "backend name": ["All", "default", "other"],
    }


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        pytest.param(lambda rows: str(rows[1].id), [1], id="whole-id"),
        # Ids are time-ordered: ids made in the same millisecond share their start.
        pytest.param(lambda rows: str(rows[1].id)[-12:], [1], id="end-of-id"),
        pytest.param(lambda rows: "tests.tasks.fails", [2, 1], id="task-path"),
        pytest.param(lambda rows: "fails", [2, 1], id="part-of-task-path"),
        pytest.param(lambda rows: "nothing-like-it", [], id="no-match"),
    ],
)
def test_changelist__search(backend, admin_client, term, expected):
    rows = run(tasks.add.enqueue(1, 2), tasks.fails.enqueue("a"), tasks.fails.enqueue("b"))

    response = admin_client.get(reverse(CHANGELIST), {"q": term(rows)})

    assert listed_ids(response) == [str(rows[index].id) for index in expected]


# The change page


def test_change_page__shows_the_row_read_only(backend, admin_client):
    (row,) = run(tasks.fails.enqueue("boom"))

    response = admin_client.get(change_url(row))

    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}
    assert 'name="_save"' not in response.content.decode()
    shown = rendered_fields(response)
    assert list(shown) == [
        "id",
        "task_path",
        "status",
        "backend_name",
        "queue_name",
        "priority",
        "arguments",
        "returned",
        "error_details",
        "enqueued_at",
        "run_after",
        "ready_at",
        "started_at",
        "last_attempted_at",
        "finished_at",
        "attempts",
        "workers",
        "lease_owner",
        "lease_expires_at",
    ]
    (worker_id,) = row.worker_ids
    assert {name: shown[name] for name in ("task_path", "status", "arguments", "returned")} == {
        "task_path": "tests.tasks.fails",
        "status": "Failed",
        "arguments": "<pre>{\n  &quot;args&quot;: [\n    &quot;boom&quot;\n  ],\n"
        "  &quot;kwargs&quot;: {}\n}</pre>",
        "returned": "-",
    }
    assert shown["error_details"].startswith("<p><strong>builtins.ValueError</strong></p><pre>")
    assert "ValueError: boom\n</pre>" in shown["error_details"]
    assert (shown["attempts"], shown["workers"], shown["lease_owner"]) == ("1", worker_id, "-")
    timestamps = ["enqueued_at", "ready_at", "started_at", "last_attempted_at", "finished_at"]
    assert [name for name in timestamps if shown[name] == "-"] == []
    assert (shown["run_after"], shown["lease_expires_at"]) == ("-", "-")


def test_change_page__shows_the_return_value_as_json(backend, admin_client):
    (row,) = run(tasks.echo.enqueue({"total": 3, "items": ["a", "b"]}))

    shown = rendered_fields(admin_client.get(change_url(row)))

    assert shown["returned"] == (
        "<pre>{\n  &quot;total&quot;: 3,\n  &quot;items&quot;: [\n    &quot;a&quot;,\n"
        "    &quot;b&quot;\n  ]\n}</pre>"
    )
    assert shown["error_details"] == "-"


def test_change_page__shows_the_lease_of_a_running_row(backend, admin_client):
    (row,) = run(tasks.add.enqueue(1, 2))
    # A worker that holds the row right now, as a claim would leave it.
    DBTaskResult.objects.filter(id=row.id).update(
        status=TaskResultStatus.RUNNING, worker_id="host:42:abc", lease_expires_at=row.finished_at
    )

    shown = rendered_fields(admin_client.get(change_url(row)))

    (first,) = row.worker_ids
    assert (shown["attempts"], shown["workers"], shown["lease_owner"]) == (
        "2",
        f"{first}<br>host:42:abc",
        "host:42:abc",
    )
    assert shown["lease_expires_at"] != "-"


@pytest.mark.parametrize(
    ("enqueue", "fields"),
    [
        pytest.param(lambda: tasks.echo.enqueue(SCRIPT), ["arguments", "returned"], id="echo"),
        pytest.param(
            lambda: tasks.fails.enqueue(SCRIPT), ["arguments", "error_details"], id="fails"
        ),
    ],
)
def test_change_page__escapes_what_tasks_store(backend, admin_client, enqueue, fields):
    (row,) = run(enqueue())

    response = admin_client.get(change_url(row))

    assert SCRIPT not in response.content.decode()
    shown = rendered_fields(response)
    assert [name for name in fields if ESCAPED_SCRIPT not in shown[name]] == []


def test_change_page__shows_stored_text_that_is_not_json_as_it_is(backend, admin_client):
    (row,) = run(tasks.add.enqueue(1, 2))
    DBTaskResult.objects.filter(id=row.id).update(args_kwargs="[1, 2", return_value="<3>")

    shown = rendered_fields(admin_client.get(change_url(row)))

    assert (shown["arguments"], shown["returned"]) == ("<pre>[1, 2</pre>", "<pre>&lt;3&gt;</pre>")


def test_change_page__refuses_to_save(backend, admin_client):
    (row,) = run(tasks.fails.enqueue("boom"))
    before = model_to_dict(DBTaskResult.objects.get(id=row.id))

    response = admin_client.post(change_url(row), {"status": "READY", "task_path": "x.y"})

    assert response.status_code == 403
    assert model_to_dict(DBTaskResult.objects.get(id=row.id)) == before


def test_add__is_refused(backend, admin_client):
    listing = admin_client.get(reverse(CHANGELIST))

    response = admin_client.get(reverse("admin:django_tasks_database_dbtaskresult_add"))

    assert response.status_code == 403
    assert listing.context["has_add_permission"] is False
    assert reverse("admin:django_tasks_database_dbtaskresult_add") not in listing.content.decode()


# Actions

COPIED = ("task_path", "backend_name", "queue_name", "priority", "args_kwargs")


def test_requeue_action__inserts_a_new_ready_row_per_failed_row(
    backend, admin_client, admin_user, signal_log
):
    failed, reported_failure, succeeded = run(
        tasks.fails.enqueue("boom"),
        tasks.fails.using(queue_name="reports", priority=5).enqueue("bang"),
        tasks.add.enqueue(1, 2),
    )
    before = {row.id: model_to_dict(row) for row in DBTaskResult.objects.all()}
    signal_log.events.clear()

    response = post_action(admin_client, "requeue_failed", [failed, reported_failure, succeeded])

    assert response.status_code == 302
    assert messages_of(response) == [
        ("warning", "Re-enqueued 2 failed tasks; skipped 1 task that was not FAILED.")
    ]
    assert {row.id: model_to_dict(row) for row in DBTaskResult.objects.filter(id__in=before)} == (
        before
    )
    new_rows = DBTaskResult.objects.exclude(id__in=before).order_by("priority")
    assert [
        (model_to_dict(new, fields=(*COPIED, "status", "run_after")), new.ready_at)
        for new in new_rows
    ] == [
        (
            {**model_to_dict(old, fields=COPIED), "status": "READY", "run_after": None},
            new.enqueued_at,
        )
        for old, new in zip([failed, reported_failure], new_rows, strict=True)
    ]
    assert all(new.errors == [] and new.worker_ids == [] for new in new_rows)
    assert sorted(
        (entry.user_id, entry.action_flag, entry.object_id, entry.change_message)
        for entry in LogEntry.objects.all()
    ) == sorted(
        (admin_user.id, ADDITION, str(new.id), f"Re-enqueued from task result {old.id}.")
        for old, new in zip([failed, reported_failure], new_rows, strict=True)
    )
    assert [(name, status) for name, status, _ in signal_log.events] == [
        ("enqueued", "READY"),
        ("enqueued", "READY"),
    ]

    drain(backend)

    assert [(row.status, row.attempts) for row in new_rows.all()] == [
        (TaskResultStatus.FAILED, 1),
        (TaskResultStatus.FAILED, 1),
    ]


def test_requeue_action__only_failed_rows_is_a_success(backend, admin_client):
    (failed,) = run(tasks.fails.enqueue("boom"))

    response = post_action(admin_client, "requeue_failed", [failed])

    assert messages_of(response) == [
        ("success", "Re-enqueued 1 failed task; skipped 0 tasks that were not FAILED.")
    ]
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 1


@pytest.mark.parametrize(
    "backend_name",
    [
        pytest.param("removed", id="not-configured"),
        pytest.param("memory", id="not-a-database-backend"),
    ],
)
def test_requeue_action__skips_rows_whose_backend_is_gone(backend, admin_client, backend_name):
    (failed,) = run(tasks.fails.enqueue("boom"))
    DBTaskResult.objects.filter(id=failed.id).update(backend_name=backend_name)

    response = post_action(admin_client, "requeue_failed", [failed])

    assert messages_of(response) == [
        ("warning", "Re-enqueued 0 failed tasks; skipped 0 tasks that were not FAILED."),
        (
            "error",
            "Skipped 1 task whose backend is no longer a database backend in the TASKS setting.",
        ),
    ]
    assert DBTaskResult.objects.count() == 1


def test_delete_action__deletes_the_selected_rows(backend, admin_client):
    kept, deleted = run(tasks.add.enqueue(1, 2), tasks.fails.enqueue("boom"))

    response = post_action(admin_client, "delete_selected", [deleted], post="yes")

    assert response.status_code == 302
    assert list(DBTaskResult.objects.values_list("id", flat=True)) == [kept.id]


# The backend method behind the action


def test_requeue__stores_the_row_even_if_its_task_is_gone(backend, signal_log):
    (failed,) = run(tasks.fails.enqueue("boom"))
    DBTaskResult.objects.filter(id=failed.id).update(task_path="tests.tasks.removed")
    failed.refresh_from_db()
    signal_log.events.clear()

    new = backend.requeue(failed)

    assert model_to_dict(DBTaskResult.objects.get(id=new.id), fields=(*COPIED, "status")) == {
        **model_to_dict(failed, fields=COPIED),
        "status": "READY",
    }
    assert new.id != failed.id
    assert signal_log.events == []


def test_requeue__refuses_a_row_of_another_backend(backend):
    (row,) = run(tasks.add.using(backend="other").enqueue(1, 2))

    with pytest.raises(InvalidTaskBackend, match="belongs to backend 'other', not 'default'"):
        backend.requeue(row)

    assert DBTaskResult.objects.count() == 1


# Permissions


@pytest.mark.parametrize(
    ("permissions", "pages", "action", "requeues"),
    [
        pytest.param((), 403, 403, False, id="none"),
        # No action is offered at all, so the post just shows the list again.
        pytest.param(("view",), 200, 200, False, id="view"),
        # Only delete is offered, so the admin answers "No action selected".
        pytest.param(("view", "delete"), 200, 302, False, id="view-delete"),
        pytest.param(("change",), 200, 302, True, id="change"),
    ],
)
def test_permissions__decide_who_sees_and_requeues(
    backend, staff_client, permissions, pages, action, requeues
):
    (failed,) = run(tasks.fails.enqueue("boom"))
    client = staff_client(*permissions)

    listing = client.get(reverse(CHANGELIST))
    page = client.get(change_url(failed))
    posted = post_action(client, "requeue_failed", [failed])

    assert (listing.status_code, page.status_code, posted.status_code) == (pages, pages, action)
    assert ('value="requeue_failed"' in listing.content.decode()) is requeues
    assert DBTaskResult.objects.count() == (2 if requeues else 1)

"""A task declared with `django.tasks`' own `@task`, run by a real `db_worker` process."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip(
    "django.tasks", reason="django.tasks is new in Django 6.0; Django 5.2 has no such API"
)

import django.tasks

from django_tasks import TaskResultStatus
from tests import django6_tasks

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]


def test_worker__runs_a_task_declared_with_django_tasks(start_worker):
    result = django6_tasks.total.enqueue(Decimal("1.25"), quantity=4)

    worker = start_worker("--batch")

    assert worker.wait() == 0, worker.output()
    finished = django.tasks.task_backends["database"].get_result(result.id)
    assert finished.status == TaskResultStatus.SUCCESSFUL, finished.traceback
    assert finished.return_value == Decimal("5.00")
    assert type(finished.return_value) is Decimal
    assert finished.worker_ids == ["worker-1"]

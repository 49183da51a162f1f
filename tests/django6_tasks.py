"""Tasks declared with `django.tasks`' own `@task` on django_tasks backends (Django 6+).

Importing this module needs Django 6; only tests/**/test_django6*.py import it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.tasks import TaskContext, task
from django.tasks.backends.base import BaseTaskBackend


@task(backend="database")
def total(price: Decimal, quantity: int) -> Decimal:
    return price * quantity


@task
def later(when: datetime, by: timedelta) -> datetime:
    return when + by


@task
def untyped(a, b=None):  # type: ignore[no-untyped-def]
    return [a, b]


@task
def fails(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def attempt(context: TaskContext, label: str) -> str:
    return f"{label}:{context.attempt}"


def by_hand(x: int) -> int:
    """Made into a `django.tasks.Task` by hand, in the tests."""
    return x * 2


def not_a_task(x: int) -> int:
    """Never made into a task: a worker must refuse to run it."""
    return x


class ThirdPartyBackend(BaseTaskBackend):
    """A backend written for django.tasks, as a third-party package would ship."""

    def enqueue(self, task, args, kwargs):  # type: ignore[no-untyped-def]
        raise NotImplementedError

"""The tasks the queue benchmark enqueues and its `db_worker` processes run.

They live in a module of the `tests` app, so a worker may import them, and are declared
on the `database` backend of `tests.settings`, as a project's tasks are on its default
backend, so a worker runs them without re-targeting each row.
"""

from __future__ import annotations

from datetime import datetime

from django_tasks import task


@task(backend="database")
def noop() -> None:
    """Do nothing: what is left is the queue's own cost."""


@task(backend="database")
def three_args(user_id: int, email: str, when: datetime) -> None:
    """Take three scalar arguments, the common case."""


@task(backend="database")
def ten_args(
    user_id: int,
    email: str,
    when: datetime,
    tags: list[str],
    scores: dict[str, int],
    ratio: float,
    active: bool,
    note: str | None,
    attempt: int,
    source: str,
) -> None:
    """Take ten arguments, two of them typed containers."""

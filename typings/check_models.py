"""Type-level checks for model instances as arguments and results, and retry policies."""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

from django.contrib.auth.models import Group, User

from django_tasks import Retry, RetryPolicy, TaskContext, TaskResult, task


@task(retry=RetryPolicy(max_attempts=5, retry_on=(ConnectionError,), delay=timedelta(1)))
def welcome(user: User, groups: list[Group], referrer: User | None = None) -> User:
    return user


@task(takes_context=True, retry=RetryPolicy(backoff=2))
def poll(context: TaskContext[int], user: User) -> int:
    if context.attempt < 3:
        raise Retry("not yet", delay=timedelta(seconds=5))
    return context.attempt


def enqueue_models(user: User, group: Group) -> None:
    assert_type(welcome.enqueue(user, [group]), TaskResult[User])
    assert_type(welcome.enqueue(user, [group], referrer=None).return_value, User)
    assert_type(poll.enqueue(user).return_value, int)
    welcome.enqueue(group, [group])  # type: ignore[arg-type]
    welcome.enqueue(user, [user])  # type: ignore[list-item]


once = welcome.using(retry=RetryPolicy(max_attempts=1))
welcome.using(retry=3)  # type: ignore[arg-type]
RetryPolicy(delay=1.5)  # type: ignore[arg-type]

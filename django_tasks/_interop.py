"""Where django_tasks meets `django.tasks` (Django 6.0 and later).

- Our backends can be named in `TASKS` for code that uses `django.tasks`: Django's
  `@task` builds the backend's `task_class`, our `Task`, and a `django.tasks.Task` made
  by hand is turned into an equivalent `Task` here (`as_task`), so both get the same
  validation, typed decoding and worker.
- Where `django.tasks.task_backends` and ours read the same `TASKS` entry, they share one
  backend instance per thread (`shared_backend`), so a Dummy backend's `results` or an
  Immediate backend's recent results are the same whichever API reads them.
- `django.tasks`' own backends are refused by our API (`refuse_django_backend`): they
  run a task without validating its arguments or decoding them into their declared types,
  which is what every django_tasks task relies on.

The exceptions and signals are shared in `exceptions.py` and `signals.py`. On Django 5.2
there is no `django.tasks`, and everything here does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ParamSpec, TypeVar

import django
from django.conf import settings

from django_tasks import exceptions, tasks

P = ParamSpec("P")
T = TypeVar("T")

HAS_DJANGO_TASKS = django.VERSION >= (6, 0)
"""Whether this Django has `django.tasks` (6.0 and later)."""

REPLACEMENTS = {
    "django.tasks.backends.immediate.ImmediateBackend": (
        "django_tasks.backends.immediate.ImmediateBackend"
    ),
    "django.tasks.backends.dummy.DummyBackend": "django_tasks.backends.dummy.DummyBackend",
}
"""Django's own backends, and the django_tasks backend that does the same job."""


class DjangoBackendRefused(exceptions.InvalidTaskBackend):
    """A `django.tasks` backend is named where a django_tasks backend is needed."""


def tasks_setting() -> Any:
    """Return the project's `TASKS` setting, or None if the project leaves it unset.

    Django 6 has a global default for `TASKS` naming its own Immediate backend; that
    default is Django's, not the project's, so our API keeps its own default then.
    """
    # LazySettings.is_overridden is public Django API that django-stubs leaves out.
    if HAS_DJANGO_TASKS and not settings.is_overridden("TASKS"):  # type: ignore[misc]
        return None
    return getattr(settings, "TASKS", None)


def is_django_backend(backend_class: type) -> bool:
    """Tell whether `backend_class` is a backend written for `django.tasks`."""
    if not HAS_DJANGO_TASKS:
        return False
    from django.tasks.backends.base import BaseTaskBackend as DjangoBaseTaskBackend

    return issubclass(backend_class, DjangoBaseTaskBackend)


def refuse_django_backend(alias: str, path: str, backend_class: type) -> None:
    """Raise `DjangoBackendRefused` if `backend_class` is a `django.tasks` backend."""
    if not is_django_backend(backend_class):
        return
    named = f"TASKS['{alias}']['BACKEND'] names '{path}', a django.tasks backend"
    reason = (
        "which runs tasks without validating their arguments or decoding them into their "
        "declared types, as every django_tasks task needs"
    )
    replacement = REPLACEMENTS.get(f"{backend_class.__module__}.{backend_class.__qualname__}")
    if replacement:
        raise DjangoBackendRefused(
            f"{named}, {reason}. Name '{replacement}' instead: it does the same job, "
            "and code using django.tasks can use it too."
        )
    raise DjangoBackendRefused(
        f"{named}, {reason}. Keep it under its alias for tasks declared with "
        "django.tasks, and give django_tasks tasks a django_tasks backend (a subclass of "
        "django_tasks.backends.base.BaseTaskBackend) under another alias."
    )


def shared_backend(alias: str, params: Mapping[str, Any]) -> object | None:
    """Return the backend `django.tasks.task_backends` has for `alias`, if it is ours too.

    Only when Django's handler reads the same `TASKS` entry; the caller checks that the
    instance is a django_tasks backend.
    """
    if not HAS_DJANGO_TASKS:
        return None
    from django.tasks import task_backends as django_task_backends

    if django_task_backends.settings.get(alias) != params:
        return None
    backend: object = django_task_backends[alias]
    return backend


def as_task(task: tasks.Task[P, T]) -> tasks.Task[P, T]:
    """Return `task`, or the `Task` equivalent to a `django.tasks.Task` made by hand.

    The equivalent has the same function and options (and `enqueue_on_commit` None, so
    the backend's setting applies); it is what the backend validates, enqueues and puts
    in `TaskResult.task`.
    """
    given: object = task
    if isinstance(given, tasks.Task):
        return task
    return _from_django(given)


def _from_django(given: object) -> tasks.Task[Any, Any]:
    if HAS_DJANGO_TASKS:
        from django.tasks import Task as DjangoTask

        if isinstance(given, DjangoTask):
            return tasks.Task(
                func=given.func,
                priority=given.priority,
                backend=given.backend,
                queue_name=given.queue_name,
                run_after=given.run_after,
                takes_context=given.takes_context,
            )
    raise exceptions.InvalidTask(
        f"{given!r} is not a task; declare it with @task from django_tasks or django.tasks."
    )

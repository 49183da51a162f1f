"""System checks: backends that cannot be built, and tasks whose signature cannot be."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.utils.module_loading import autodiscover_modules

from django_tasks import _interop, exceptions
from django_tasks.tasks import registered_tasks


def check_backends(
    app_configs: Iterable[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Build every backend in `TASKS` and collect its own checks.

    On Django 6, an alias naming a `django.tasks` backend is left to Django, and so are
    the checks of a backend Django's `TASKS` check already runs (it shares our instance).
    """
    from django_tasks import task_backends

    messages: list[checks.CheckMessage] = []
    for alias in task_backends:
        try:
            backend = task_backends[alias]
        except _interop.DjangoBackendRefused:
            continue
        except exceptions.InvalidTaskBackend as error:
            messages.append(
                checks.Error(
                    str(error),
                    hint="Fix the TASKS setting: BACKEND must be the dotted path of a "
                    "task backend class, and OPTIONS must use the keys it documents.",
                    obj=f"TASKS['{alias}']",
                    id="django_tasks.E001",
                )
            )
            continue
        if _interop.shared_backend(alias, task_backends.settings[alias]) is not backend:
            messages.extend(backend.check(**kwargs))
    return messages


def check_task_signatures(
    app_configs: Iterable[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Build the argument and return models of every registered task.

    Each installed app's `tasks` module is imported first, so tasks defined there are
    checked even if nothing else has imported them yet.
    """
    autodiscover_modules("tasks")
    messages: list[checks.CheckMessage] = []
    for task in registered_tasks():
        try:
            task.signature.build()
        except exceptions.InvalidTask as error:
            messages.append(
                checks.Error(
                    str(error),
                    hint="Every annotation of a task must resolve when its module is fully "
                    "imported, and name a type pydantic can validate.",
                    obj=task.module_path,
                    id="django_tasks.E002",
                )
            )
    return messages

"""The Django app for django_tasks: registers its system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class TasksAppConfig(AppConfig):
    """Register the system checks of `django_tasks`."""

    name = "django_tasks"
    verbose_name = "Tasks"

    def ready(self) -> None:
        """Register the checks of backends and task signatures."""
        from django_tasks import checks as task_checks

        checks.register(task_checks.check_backends)
        checks.register(task_checks.check_task_signatures)

"""The Django app of the database backend."""

from django.apps import AppConfig


class DatabaseBackendConfig(AppConfig):
    """The app holding the task result table, its admin and its commands."""

    name = "django_tasks.backends.database"
    label = "django_tasks_database"
    verbose_name = "Tasks (database backend)"
    default_auto_field = "django.db.models.BigAutoField"

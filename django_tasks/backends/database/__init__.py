"""The database backend: results in one table, run by `manage.py db_worker`.

Add `"django_tasks.backends.database"` to `INSTALLED_APPS` (app label
`django_tasks_database`) and name `django_tasks.backends.database.DatabaseBackend` in
`TASKS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_tasks.backends.database.backend import DatabaseBackend

__all__ = ["DatabaseBackend"]


def __getattr__(name: str) -> Any:
    # Imported lazily: this package is also the Django app, loaded before models are ready.
    if name == "DatabaseBackend":
        from django_tasks.backends.database.backend import DatabaseBackend

        return DatabaseBackend
    raise AttributeError(name)

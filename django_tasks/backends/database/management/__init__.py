"""Management commands of the database backend, and what they share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.management.base import CommandError

from django_tasks.exceptions import InvalidTaskBackend


def database_backend(alias: str, command: str) -> DatabaseBackend:
    """Return the database backend under `alias`, or raise a `CommandError` saying why not."""
    from django_tasks import task_backends
    from django_tasks.backends.database.backend import DatabaseBackend

    try:
        backend = task_backends[alias]
    except InvalidTaskBackend as error:
        raise CommandError(str(error)) from None
    if not isinstance(backend, DatabaseBackend):
        raise CommandError(
            f"Backend '{alias}' ({type(backend).__name__}) is not a DatabaseBackend; "
            f"{command} works only on tasks stored in the database."
        )
    return backend


if TYPE_CHECKING:
    from django_tasks.backends.database.backend import DatabaseBackend

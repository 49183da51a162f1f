"""The `TASKS` setting, and the per-thread backend instances built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.local import Local
from django.utils.connection import BaseConnectionHandler
from django.utils.module_loading import import_string

from django_tasks import _interop, exceptions
from django_tasks.backends.base import BaseTaskBackend

DEFAULT_TASKS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}
}


if TYPE_CHECKING:
    _HandlerBase = BaseConnectionHandler[BaseTaskBackend]
else:
    _HandlerBase = BaseConnectionHandler


class TaskBackendHandler(_HandlerBase):
    """Build each backend named in `TASKS` on first use, once per thread."""

    settings_name = "TASKS"
    exception_class = exceptions.InvalidTaskBackend

    def configure_settings(self, configured: dict[str, Any] | None) -> dict[str, Any]:
        """Return the `TASKS` setting, or an Immediate `default` backend if it is unset.

        On Django 6, "unset" means the project does not set it: Django's global default
        names Django's own Immediate backend, which cannot run our tasks.
        """
        configured = configured or _interop.tasks_setting() or DEFAULT_TASKS
        if not isinstance(configured, dict):
            raise exceptions.InvalidTaskBackend("The TASKS setting must be a dict of aliases.")
        return configured

    def create_connection(self, alias: str) -> BaseTaskBackend:
        """Build the backend configured under `alias`."""
        params = self.settings[alias]
        path = params.get("BACKEND") if isinstance(params, dict) else None
        if not isinstance(path, str):
            raise exceptions.InvalidTaskBackend(
                f"TASKS['{alias}'] must be a dict with a 'BACKEND' dotted path."
            )
        try:
            backend_class = import_string(path)
        except ImportError as error:
            raise exceptions.InvalidTaskBackend(
                f"Could not import backend '{path}' of TASKS['{alias}']: {error}"
            ) from error
        if not (isinstance(backend_class, type) and issubclass(backend_class, BaseTaskBackend)):
            if isinstance(backend_class, type):
                _interop.refuse_django_backend(alias, path, backend_class)
            raise exceptions.InvalidTaskBackend(
                f"TASKS['{alias}']['BACKEND'] names '{path}', which is not a subclass of "
                "django_tasks.backends.base.BaseTaskBackend."
            )
        # One instance per thread for both APIs, so they see the same stored results.
        shared = _interop.shared_backend(alias, params)
        if isinstance(shared, BaseTaskBackend):
            return shared
        backend: BaseTaskBackend = backend_class(alias=alias, params=params)
        return backend

    def __getitem__(self, alias: str) -> BaseTaskBackend:
        if alias not in self.settings:
            known = ", ".join(sorted(self.settings))
            raise exceptions.InvalidTaskBackend(
                f"No task backend '{alias}' in the TASKS setting (configured: {known})."
            )
        return super().__getitem__(alias)

    def reset(self) -> None:
        """Forget the settings and every built backend, after `TASKS` changes."""
        self._settings = None
        self.__dict__.pop("settings", None)
        self._connections = Local(self.thread_critical)

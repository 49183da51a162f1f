"""A backend that supports nothing optional, to test the capability flags."""

from typing import Any

from django_tasks.backends.immediate import ImmediateBackend


class NoFeaturesBackend(ImmediateBackend):
    supports_async_task = False
    supports_priority = False
    supports_defer = False
    supports_get_result = False


__all__: list[Any] = ["NoFeaturesBackend"]

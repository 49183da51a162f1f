"""A task whose annotation never resolves at run time: the system check must say so."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_tasks import task

if TYPE_CHECKING:
    from tests.later import DefinedLater


@task
def forward(item: DefinedLater) -> DefinedLater:
    return item

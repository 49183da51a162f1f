"""The admin of the result table: read-only rows, and an action that re-enqueues failures.

Rows change only through workers and the backend, so the change page shows a row and
never saves one; the `change` permission guards the re-enqueue action instead.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_tasks import exceptions, task_backends
from django_tasks.backends.database.backend import DatabaseBackend
from django_tasks.backends.database.models import DBTaskResult
from django_tasks.results import TaskResultStatus

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[DBTaskResult]
else:
    # ModelAdmin is generic only in django-stubs, not at runtime.
    _ModelAdmin = admin.ModelAdmin

# Columns the list never shows and that can be large: tracebacks and payloads.
_PAYLOAD_FIELDS = ("args_kwargs", "return_value", "errors")

# The change page's sections; every name is read-only.
_SUMMARY = ("id", "task_path", "status", "backend_name", "queue_name", "priority")
_CALL = ("arguments", "returned", "error_details")
_TIMES = ("enqueued_at", "run_after", "ready_at", "started_at", "last_attempted_at", "finished_at")
_WORKERS = ("attempts", "workers", "lease_owner", "lease_expires_at")


def _pretty_json(text: str) -> str:
    """Return JSON text indented for reading, or unchanged if it is not JSON."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _preformatted(text: str) -> SafeString:
    """Return `text`, escaped, in a `<pre>` block."""
    return format_html("<pre>{}</pre>", text)


def _plural(count: int, noun: str) -> str:
    """Return `count` and `noun`, with an s when the count is not one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class _ResultChangeList(ChangeList):
    """Leave the large columns out of the list's query; no column shows them."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str | None] | None = None
    ) -> QuerySet[Any]:
        """Return the filtered rows, without their payloads."""
        return super().get_queryset(request, exclude_parameters).defer(*_PAYLOAD_FIELDS)


@admin.register(DBTaskResult)
class DBTaskResultAdmin(_ModelAdmin):
    """List, inspect, delete and re-enqueue the rows of the database backend."""

    list_display = (
        "id",
        "task_path",
        "status",
        "queue_name",
        "priority",
        "enqueued_at",
        "finished_at",
        "attempts",
    )
    list_filter = ("status", "queue_name", "task_path", "backend_name")
    search_fields = ("id", "task_path")
    ordering = ("-enqueued_at",)
    actions = ("requeue_failed",)
    fieldsets = (
        (None, {"fields": _SUMMARY}),
        ("Call", {"fields": _CALL}),
        ("Times", {"fields": _TIMES}),
        ("Workers", {"fields": _WORKERS}),
    )
    readonly_fields = _SUMMARY + _CALL + _TIMES + _WORKERS

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """Return the change list that leaves payloads out of its query."""
        return _ResultChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Refuse: tasks are enqueued from code, where their arguments are validated."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: DBTaskResult | None = None) -> bool:
        """Allow actions to users with the change permission, but no edits of a row."""
        # Saving a row would overwrite what a worker wrote to it meanwhile.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="arguments")
    def arguments(self, row: DBTaskResult) -> SafeString:
        """Show the stored arguments as indented JSON."""
        return _preformatted(_pretty_json(row.args_kwargs))

    @admin.display(description="return value")
    def returned(self, row: DBTaskResult) -> SafeString | str:
        """Show the stored return value as indented JSON, once the task has succeeded."""
        if row.return_value is None:
            return self.get_empty_value_display()
        return _preformatted(_pretty_json(row.return_value))

    @admin.display(description="errors")
    def error_details(self, row: DBTaskResult) -> SafeString | str:
        """Show each error's exception class and traceback, oldest first."""
        errors = row.error_list()
        if not errors:
            return self.get_empty_value_display()
        return format_html_join(
            "",
            "<p><strong>{}</strong></p><pre>{}</pre>",
            (
                (str(error.get("exception_class_path", "")), str(error.get("traceback", "")))
                for error in errors
            ),
        )

    @admin.display(description="workers")
    def workers(self, row: DBTaskResult) -> str:
        """Show the worker of each attempt, oldest first, one a line."""
        return "\n".join(row.all_worker_ids()) or self.get_empty_value_display()

    @admin.display(description="lease owner")
    def lease_owner(self, row: DBTaskResult) -> str:
        """Show the worker that holds the row while it runs."""
        return row.worker_id or self.get_empty_value_display()

    @admin.action(permissions=["change"], description="Re-enqueue selected failed tasks")
    def requeue_failed(self, request: HttpRequest, queryset: QuerySet[DBTaskResult]) -> None:
        """Enqueue each selected FAILED task again as a new row; leave the rest alone."""
        outcomes = Counter(self._requeue(request, row) for row in queryset.defer(None))
        requeued, not_failed = outcomes["requeued"], outcomes["not failed"]
        level = messages.SUCCESS if requeued and not not_failed else messages.WARNING
        self.message_user(
            request,
            f"Re-enqueued {_plural(requeued, 'failed task')}; "
            f"skipped {_plural(not_failed, 'task')} that {'was' if not_failed == 1 else 'were'} "
            "not FAILED.",
            level,
        )
        if outcomes["no backend"]:
            self.message_user(
                request,
                f"Skipped {_plural(outcomes['no backend'], 'task')} whose backend is no longer "
                "a database backend in the TASKS setting.",
                messages.ERROR,
            )

    def _requeue(self, request: HttpRequest, row: DBTaskResult) -> str:
        """Re-enqueue `row` if it failed, and say what became of it."""
        if row.status != TaskResultStatus.FAILED:
            return "not failed"
        try:
            backend = task_backends[row.backend_name]
        except exceptions.InvalidTaskBackend:
            return "no backend"
        if not isinstance(backend, DatabaseBackend):
            return "no backend"
        # Logged like an addition, so the admin's history says who enqueued the new row.
        self.log_addition(request, backend.requeue(row), f"Re-enqueued from task result {row.id}.")
        return "requeued"

"""Make three indexes partial where the database supports it: only rows that need them.

The lease, worker and finished indexes only ever serve rows whose indexed column is set
(RUNNING rows carry a lease and a worker; finished rows a finish time), so READY rows,
the bulk of a busy queue, need not be in them: every enqueue, claim and finish then
writes fewer index entries. Each condition is `IS NOT NULL` on the indexed column, which
every query on it implies even with bound parameters (SQLite's planner needs that).

Django's model state keeps the plain definitions (`DBTaskResult.Meta.indexes`): MySQL and
MariaDB have no partial indexes and keep the plain ones, so one model serves them all. On
PostgreSQL each index is built concurrently beside the old one and swapped in, so a busy
queue is not locked while it builds. A later migration that rebuilds the table on SQLite
would recreate the plain indexes (correct, only larger).
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps
from django.db.models import Q

TABLE_FIELDS = {
    "django_tasks_lease_idx": (["status", "lease_expires_at"], ["lease_expires_at"]),
    "django_tasks_worker_idx": (["worker_id"], ["worker_id"]),
    "django_tasks_finished_idx": (["status", "finished_at"], ["status", "finished_at"]),
}
CONDITIONS = {
    "django_tasks_lease_idx": Q(lease_expires_at__isnull=False),
    "django_tasks_worker_idx": Q(worker_id__isnull=False),
    "django_tasks_finished_idx": Q(finished_at__isnull=False),
}


def _swap(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor, *, to_partial: bool) -> None:
    if not schema_editor.connection.features.supports_partial_indexes:
        return
    model = apps.get_model("django_tasks_database", "DBTaskResult")
    postgresql = schema_editor.connection.vendor == "postgresql"
    quote = schema_editor.quote_name
    for name, (plain_fields, partial_fields) in TABLE_FIELDS.items():
        condition = CONDITIONS[name] if to_partial else None
        fields = partial_fields if to_partial else plain_fields
        old = models.Index(fields=partial_fields if not to_partial else plain_fields, name=name)
        if not postgresql:
            schema_editor.remove_index(model, old)
            schema_editor.add_index(
                model, models.Index(fields=fields, name=name, condition=condition)
            )
            continue
        # Built beside the old one and swapped in, without locking the table: a busy
        # queue keeps enqueueing and claiming while it is built.
        building = models.Index(fields=fields, name=f"{name}_new", condition=condition)
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(building.name)}")
        schema_editor.execute(building.create_sql(model, schema_editor, concurrently=True))
        schema_editor.execute(old.remove_sql(model, schema_editor, concurrently=True))
        schema_editor.execute(f"ALTER INDEX {quote(building.name)} RENAME TO {quote(name)}")


def to_partial(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _swap(apps, schema_editor, to_partial=True)


def to_plain(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _swap(apps, schema_editor, to_partial=False)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run in a transaction.
    atomic = False

    dependencies = [
        ("django_tasks_database", "0003_retry_policy"),
    ]

    operations = [
        migrations.RunPython(
            to_partial, to_plain, elidable=False, hints={"model_name": "dbtaskresult"}
        )
    ]

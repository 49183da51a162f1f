"""On PostgreSQL, NOTIFY idle workers when tasks are inserted; other databases poll."""

from collections.abc import Callable
from typing import Any

from django.db import migrations

TABLE = "django_tasks_database_dbtaskresult"

CREATE = f"""
CREATE OR REPLACE FUNCTION django_tasks_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('django_tasks', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS django_tasks_notify ON {TABLE};
CREATE TRIGGER django_tasks_notify AFTER INSERT ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION django_tasks_notify();
"""

DROP = f"""
DROP TRIGGER IF EXISTS django_tasks_notify ON {TABLE};
DROP FUNCTION IF EXISTS django_tasks_notify();
"""


def _on_postgresql(sql: str) -> Callable[[Any, Any], None]:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("django_tasks_database", "0001_initial")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]

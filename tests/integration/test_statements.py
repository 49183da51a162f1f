"""The library's statements run as Django's would, and on SQLite convert their text once."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.db.utils import OperationalError

import django_tasks
from django_tasks.backends.database import statements
from django_tasks.backends.database.models import DBTaskResult
from tests import tasks
from tests.conftest import drain

pytestmark = pytest.mark.django_db(transaction=True)

on_sqlite = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="only SQLite's cursor rewrites placeholders per call"
)


def on_database(task: Any) -> Any:
    return task.using(backend="database")


@on_sqlite
def test_execute__converts_a_statement_text_once_on_sqlite(monkeypatch):
    from django.db.backends.sqlite3.base import SQLiteCursorWrapper

    converted: list[str] = []
    convert = SQLiteCursorWrapper.convert_query

    def counting(self: Any, query: str, **kwargs: Any) -> str:
        converted.append(query)
        return convert(self, query, **kwargs)

    monkeypatch.setattr(SQLiteCursorWrapper, "convert_query", counting)
    monkeypatch.setattr(statements, "_converted", {})

    results = [on_database(tasks.add).enqueue(index, 1) for index in range(3)]

    inserts = [query for query in converted if query.startswith("INSERT")]
    assert len(inserts) == 1
    stored = {
        str(row.id): row.args_kwargs
        for row in DBTaskResult.objects.filter(task_path__contains="add")
    }
    assert [stored[result.id] for result in results] == [
        '{"args":[0,1],"kwargs":{}}',
        '{"args":[1,1],"kwargs":{}}',
        '{"args":[2,1],"kwargs":{}}',
    ]


def test_execute__leaves_statements_an_execute_wrapper_watches_to_django(monkeypatch):
    ran: list[str] = []  # every statement the library ran through `statements.execute`
    execute = statements.execute

    def recording(cursor: Any, sql: str, params: Any) -> Any:
        ran.append(sql)
        return execute(cursor, sql, params)

    monkeypatch.setattr(statements, "execute", recording)
    seen: list[str] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        result = on_database(tasks.add).enqueue(2, 3)
        on_database(tasks.add).enqueue_many([tasks.add.arguments(4, 5)] * 3)
        drain(django_tasks.task_backends["database"])

    # The single INSERT, the claim and the finish at least (on SQLite, the bulk INSERT
    # too; PostgreSQL stores a batch with COPY, which is no execute() for wrappers).
    assert len(ran) >= 3
    assert [sql for sql in ran if sql not in seen] == []
    assert django_tasks.task_backends["database"].get_result(result.id).return_value == 5


@pytest.mark.parametrize("wrapped", [True, False], ids=["functools.wraps", "plain"])
def test_execute__leaves_statements_to_a_replaced_cursor_execute(monkeypatch, wrapped):
    from django.db.backends.utils import CursorWrapper

    seen: list[str] = []
    execute = CursorWrapper.execute

    def recording(self: Any, sql: str, params: Any = None) -> Any:
        seen.append(sql.split(None, 1)[0].upper())
        return execute(self, sql, params)

    if wrapped:  # as error trackers do: the name and module stay Django's
        recording = functools.wraps(execute)(recording)
    monkeypatch.setattr(CursorWrapper, "execute", recording)

    on_database(tasks.add).enqueue(2, 3)

    assert seen.count("INSERT") == 1  # MariaDB's new connection also sets up its session


@on_sqlite
def test_execute__raises_djangos_errors_on_sqlite():
    with connection.cursor() as cursor, pytest.raises(OperationalError) as raised:
        statements.execute(cursor, "SELECT * FROM no_such_table WHERE id = %s", [1])

    assert type(raised.value).__module__ == "django.db.utils"
    assert isinstance(raised.value, DatabaseError)


def test_execute__refuses_a_statement_in_a_transaction_that_must_roll_back():
    with transaction.atomic():
        transaction.set_rollback(True)
        with connection.cursor() as cursor, pytest.raises(TransactionManagementError):
            statements.execute(cursor, "SELECT %s", [1])


def test_execute__binds_percent_signs_and_placeholders_as_django_does():
    with connection.cursor() as cursor:
        statements.execute(cursor, "SELECT %s, '100%%', %s", ["a %s b", 2])
        assert list(cursor.fetchall()) == [("a %s b", "100%", 2)]

"""What a piece of code does to the database, seen from inside the process running it.

`StatementCounter` counts every statement sent through Django's cursors on any thread
(a worker runs tasks in threads, each with its own connections, so a per-connection
`execute_wrapper` would miss some), plus the BEGIN, COMMIT and ROLLBACK Django issues
itself, as `CaptureQueriesContext` lists them. `logged_warnings` collects what the
library logs at warning level or above.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StatementCounter:
    """Count statements by their first word (SELECT, UPDATE, WITH, COMMIT...) while active."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def _count(self, sql: str) -> None:
        kind = sql.split(None, 1)[0].upper() if sql.strip() else "?"
        with self._lock:
            self.kinds[kind] += 1

    @contextmanager
    def counting(self) -> Iterator[StatementCounter]:
        """Count until the block exits; not reentrant."""
        from django.db.backends import utils
        from django.db.backends.base import base

        execute, executemany = utils.CursorWrapper.execute, utils.CursorWrapper.executemany
        debug_transaction = base.debug_transaction

        def counted_execute(cursor: Any, sql: str, params: Any = None) -> Any:
            self._count(sql)
            return execute(cursor, sql, params)

        def counted_executemany(cursor: Any, sql: str, param_list: Any) -> Any:
            self._count(sql)
            return executemany(cursor, sql, param_list)

        @contextmanager
        def counted_transaction(connection: Any, sql: str) -> Iterator[None]:
            self._count(sql)
            with debug_transaction(connection, sql):
                yield

        utils.CursorWrapper.execute = counted_execute  # type: ignore[method-assign]
        utils.CursorWrapper.executemany = counted_executemany  # type: ignore[method-assign]
        base.debug_transaction = counted_transaction
        try:
            yield self
        finally:
            utils.CursorWrapper.execute = execute  # type: ignore[method-assign]
            utils.CursorWrapper.executemany = executemany  # type: ignore[method-assign]
            base.debug_transaction = debug_transaction


@contextmanager
def logged_warnings() -> Iterator[list[str]]:
    """Collect the warnings and errors logged on the `django_tasks` logger meanwhile."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname} {record.getMessage()}")

    logger = logging.getLogger("django_tasks")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)

"""Tasks that misbehave on purpose, and the plain ones the reliability suite counts.

Each task that has a side effect writes a `tests.models.Run` row first, so a test can
count how many times it really ran, whatever became of its result afterwards.
"""

from __future__ import annotations

import os
import sys
import time

from django.db import connection, transaction

from django_tasks import task
from tests.models import Run


def _ran(key: str) -> None:
    Run.objects.create(key=key, pid=os.getpid())


@task
def record(key: str, seconds: float = 0.0) -> str:
    """Write the Run row, then take `seconds`: a kill in that time leaves the side effect."""
    _ran(key)
    if seconds:
        time.sleep(seconds)
    return key


@task
def hang(key: str, seconds: float) -> str:
    """Record the start, sleep past the lease, record the end."""
    _ran(f"{key}:start")
    time.sleep(seconds)
    _ran(f"{key}:end")
    return key


@task
def churn(number: int, payload: dict[str, list[int]]) -> dict[str, int]:
    """Decode, compute and encode a little, with no side effect: for memory over time."""
    return {name: sum(values) + number for name, values in payload.items()}


@task
def raise_system_exit(key: str) -> None:
    _ran(key)
    sys.exit(3)


@task
def raise_keyboard_interrupt(key: str) -> None:
    _ran(key)
    raise KeyboardInterrupt


@task
def raise_memory_error(key: str) -> None:
    """Ask for an exabyte: a real MemoryError, raised before anything is allocated."""
    _ran(key)
    bytearray(1 << 60)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


@task
def raise_unprintable(key: str) -> None:
    _ran(key)
    raise Unprintable


@task
def raise_unstorable_message(key: str) -> None:
    _ran(key)
    raise ValueError("a NUL \x00 and a lone surrogate \ud800")


@task
def return_wrong_type(key: str) -> int:
    _ran(key)
    return key  # type: ignore[return-value]


@task
def exit_process(key: str) -> None:
    """Leave at once, as a segfault or the kernel's OOM killer would: no cleanup at all."""
    _ran(key)
    os._exit(7)


@task
def leave_autocommit_off(key: str) -> None:
    """Turn autocommit off on the worker's own connection and return."""
    _ran(key)
    transaction.set_autocommit(False)


@task
def leave_transaction_open(key: str) -> None:
    """Enter an atomic block and return without leaving it."""
    _ran(key)
    transaction.atomic().__enter__()
    Run.objects.create(key=f"{key}:uncommitted", pid=os.getpid())


@task
def close_connection(key: str) -> None:
    """Close the worker's connection under it."""
    _ran(key)
    connection.close()


@task
def return_huge(key: str, megabytes: int) -> str:
    _ran(key)
    return "x" * (megabytes << 20)

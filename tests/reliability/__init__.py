"""The reliability suite: faults thrown at real workers, and what survived them.

`pytest tests/reliability` (part of `./dev test`) runs the SHORT form; `./dev soak`
(`python -m tests.reliability --long`) runs the LONG form on each database and prints a
table of what was tried and what survived. `TASKS_RELIABILITY=long` selects the sizes of
the long form; `TASKS_RELIABILITY_REPORT=PATH` makes each test append its table rows to
PATH as JSON lines.
"""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How hard each fault is pushed."""

    name: str
    chaos_tasks: int
    """Tasks drained by 3 workers while one is SIGKILLed every few hundred ms."""
    chaos_kills: int
    """The most SIGKILLs the chaos loop sends; it also stops once every task finished."""
    task_seconds: float
    """How long each drained task takes after its side effect, so kills land mid-run."""
    fault_tasks: int
    """Tasks drained while the workers' connections are dropped (and the server restarted)."""
    fault_rounds: int
    """How many times every worker connection is dropped."""
    restarts: int
    """How many times the PostgreSQL server is restarted during the drain."""
    memory_tasks: int
    """Tasks one worker runs while its RSS and connections are sampled."""
    fuzz_examples: int
    """Generated task signatures and argument values."""


SHORT = Plan(
    name="short",
    chaos_tasks=500,
    chaos_kills=25,
    task_seconds=0.01,
    fault_tasks=300,
    fault_rounds=6,
    restarts=0,
    memory_tasks=10_000,
    fuzz_examples=200,
)
LONG = Plan(
    name="long",
    chaos_tasks=5_000,
    chaos_kills=300,
    task_seconds=0.01,
    fault_tasks=3_000,
    fault_rounds=40,
    restarts=3,
    memory_tasks=100_000,
    fuzz_examples=3_000,
)


def current_plan() -> Plan:
    """Return the plan `TASKS_RELIABILITY` names: `short` (the default) or `long`."""
    return LONG if os.environ.get("TASKS_RELIABILITY", "short") == "long" else SHORT

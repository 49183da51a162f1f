"""Retry policies: how often a failing task is tried again, and how long it waits."""

from __future__ import annotations

import dataclasses
import math
import random
import sys
from datetime import timedelta
from typing import Any

from django_tasks import exceptions


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Try a task again when it raises one of `retry_on`, up to `max_attempts` in all.

    The wait before attempt n+1 is `delay * backoff ** (n - 1)`, capped at `max_delay`,
    then moved by up to `jitter` of itself either way (0.1 = ±10%), so retries of many
    tasks that failed together spread out. `backoff=1` waits the same each time;
    `backoff=2` doubles it. Any other exception fails the task at once. A task may also
    `raise Retry(...)` to ask for another attempt, whatever it raised before.
    """

    max_attempts: int = 3
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    delay: timedelta = timedelta(seconds=1)
    backoff: float = 1.0
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise exceptions.InvalidTask(
                f"RetryPolicy(max_attempts={self.max_attempts}) must allow at least 1 attempt."
            )
        if (
            self.delay < timedelta(0)
            or not 1 <= self.backoff < math.inf
            or not 0 <= self.jitter < 1
        ):
            # `not 1 <= backoff < inf` also turns down NaN, which JSON cannot hold.
            raise exceptions.InvalidTask(
                "RetryPolicy needs delay >= 0, a finite backoff >= 1 and 0 <= jitter < 1 "
                f"(got delay={self.delay}, backoff={self.backoff}, jitter={self.jitter})."
            )

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Tell whether attempt number `attempt`, which raised `error`, gets another try."""
        if attempt >= self.max_attempts:
            return False
        return isinstance(error, (exceptions.Retry, *self.retry_on))

    def wait(self, attempt: int, error: BaseException | None = None) -> timedelta:
        """Return how long to wait after attempt number `attempt` failed with `error`."""
        if isinstance(error, exceptions.Retry) and error.delay is not None:
            return error.delay
        seconds = self.delay.total_seconds() * self.backoff ** (attempt - 1)
        seconds = min(seconds, self.max_delay.total_seconds())
        if self.jitter:
            seconds *= 1 + random.uniform(-self.jitter, self.jitter)
        return timedelta(seconds=seconds)

    def to_json(self) -> dict[str, Any]:
        """Return the policy as JSON values, to store with an enqueued call."""
        return {
            "max_attempts": self.max_attempts,
            "retry_on": [f"{kind.__module__}.{kind.__qualname__}" for kind in self.retry_on],
            "delay": self.delay.total_seconds(),
            "backoff": self.backoff,
            "max_delay": self.max_delay.total_seconds(),
            "jitter": self.jitter,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        """Rebuild a stored policy.

        Exception classes are looked up only in modules already imported (the task's
        module imports what it retries on), so a stored row cannot make a worker import
        a module.
        """
        return cls(
            max_attempts=int(data["max_attempts"]),
            retry_on=tuple(_loaded_exception(path) for path in data["retry_on"]),
            delay=timedelta(seconds=float(data["delay"])),
            backoff=float(data["backoff"]),
            max_delay=timedelta(seconds=float(data["max_delay"])),
            jitter=float(data["jitter"]),
        )


def _loaded_exception(path: str) -> type[BaseException]:
    module_name, _, name = path.rpartition(".")
    found = getattr(sys.modules.get(module_name), name, None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise exceptions.InvalidTask(
            f"The stored retry policy names '{path}', which is not an exception class of an "
            "imported module."
        )
    return found


DEFAULT_POLICY = RetryPolicy()
"""What `raise Retry()` follows in a task declared without a policy."""

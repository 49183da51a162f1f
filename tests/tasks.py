"""Task functions the test suite enqueues; module level, as every task must be."""

from __future__ import annotations

import dataclasses
import enum
import socket
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field
from typing_extensions import TypedDict

from django_tasks import Retry, RetryPolicy, TaskContext, task
from tests.models import Run


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Address(BaseModel):
    street: str
    number: int


class Customer(BaseModel):
    name: str
    joined: datetime
    address: Address
    tags: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class LineItem:
    sku: str
    price: Decimal
    quantity: int = 1


class Point(TypedDict):
    x: int
    y: int


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def untyped(a, b=None):  # type: ignore[no-untyped-def]
    return {"a": a, "b": b}


@task
def echo(value: Any) -> Any:
    return value


@task
def kinds(
    a: int, /, b: str, *rest: float, c: bool = False, d: int | None = None, **extra: date
) -> dict[str, Any]:
    return {"a": a, "b": b, "rest": list(rest), "c": c, "d": d, "extra": sorted(extra)}


class Measurement(BaseModel):
    value: float


@task
def measure(measurement: Measurement) -> float:
    return measurement.value


@task
def positional_only(a: int, /) -> int:
    return a


@task
def constrained(
    count: Annotated[int, Field(ge=1, le=10)],
    colour: Colour,
    size: Literal["s", "m"] = "s",
) -> str:
    return f"{count}-{colour.value}-{size}"


@task
def make_customer(name: str, joined: datetime) -> Customer:
    return Customer(name=name, joined=joined, address=Address(street="Main", number=1))


@task
def order_total(items: list[LineItem], customer: Customer) -> Decimal:
    return sum((item.price * item.quantity for item in items), Decimal(0))


@task
def wrong_return(value: int) -> int:
    return str(value)  # type: ignore[return-value]


@task
def returns_despite_none(value: int | None) -> None:
    """Return what it is given, though annotated `-> None`: None succeeds, 5 fails."""
    return value  # type: ignore[return-value]


@task
def fails(message: str) -> None:
    raise ValueError(message)


@task
async def async_add(a: int, b: int) -> int:
    return a + b


@task(takes_context=True)
def with_context(context: TaskContext[str], name: str) -> str:
    return f"{name}:{context.attempt}:{context.task_result.id}"


@task(priority=10, queue_name="reports")
def in_queue(value: int) -> int:
    return value


@task
def deferred_annotation(when: Later) -> Later:
    return when


class Later(BaseModel):
    at: datetime


class Everything(TypedDict, total=False):
    when: datetime
    day: date
    at: time
    span: timedelta
    amount: Decimal
    key: UUID
    colour: Colour
    size: Size
    pair: tuple[int, str]
    unique: set[int]
    frozen: frozenset[str]
    by_id: dict[int, str]
    point: Point
    item: LineItem
    customer: Customer
    maybe: int | None


@task
def everything(
    when: datetime,
    day: date,
    at: time,
    span: timedelta,
    amount: Decimal,
    key: UUID,
    colour: Colour,
    size: Size,
    pair: tuple[int, str],
    unique: set[int],
    frozen: frozenset[str],
    by_id: dict[int, str],
    point: Point,
    item: LineItem,
    customer: Customer,
    maybe: int | None = None,
) -> Everything:
    return {
        "when": when,
        "day": day,
        "at": at,
        "span": span,
        "amount": amount,
        "key": key,
        "colour": colour,
        "size": size,
        "pair": pair,
        "unique": unique,
        "frozen": frozen,
        "by_id": by_id,
        "point": point,
        "item": item,
        "customer": customer,
        "maybe": maybe,
    }


def no_parameters() -> None:
    """Not decorated here: test_decorator applies @task(takes_context=True) to it."""


def takes_a_socket(connection: socket.socket) -> None:
    """Not decorated here: pydantic cannot validate a socket."""


def takes_size_or_float(size: Size | float = 1.5) -> None:
    """Not decorated here: JSON cannot tell Size.SMALL (1) from the float 1.0."""


def returns_key_or_text() -> UUID | str:
    """Not decorated here: JSON cannot tell a UUID from its text."""
    return "text"


def takes_run_or_key(run: Run | int) -> None:
    """Not decorated here: a Run travels as its primary key, like an int."""


def _known_run(value: int) -> int:
    Run.objects.filter(pk=value).exists()  # a validator that queries the database
    return value


@task
def checks_the_database(value: Annotated[int, AfterValidator(_known_run)]) -> int:
    return value


def _picky(value: int) -> int:
    raise KeyError(value)  # a validator that fails in an unexpected way


def takes_picky_union(value: Annotated[int, AfterValidator(_picky)] | str) -> None:
    """Not decorated here: its validator raises KeyError, which pydantic lets through."""


class Circle(BaseModel):
    kind: Literal["circle"] = "circle"
    radius: float


class Square(BaseModel):
    kind: Literal["square"] = "square"
    side: float


@task
def area(shape: Annotated[Circle | Square, Field(discriminator="kind")], scale: int | str) -> float:
    """A discriminated union, and a union JSON tells apart: both accepted."""
    size = shape.radius if isinstance(shape, Circle) else shape.side
    return size * (scale if isinstance(scale, int) else len(scale))


@task
def record_run(key: str) -> int:
    """Write one Run row and return its id: the side effect tests count."""
    import os

    from tests.models import Run

    return Run.objects.create(key=key, pid=os.getpid()).pk


@task
def slow(key: str, seconds: float) -> str:
    """Record the start, sleep, record the end: long enough to be killed in the middle."""
    import os
    import time as clock

    from tests.models import Run

    Run.objects.create(key=f"{key}:start", pid=os.getpid())
    clock.sleep(seconds)
    Run.objects.create(key=f"{key}:end", pid=os.getpid())
    return key


@task
def typed_roundtrip(items: list[LineItem], customer: Customer, when: datetime) -> Everything:
    """Return typed values so a worker process must decode and encode them faithfully."""
    return {
        "when": when,
        "item": items[0],
        "customer": customer,
        "amount": sum((item.price for item in items), Decimal(0)),
    }


@task(takes_context=True, retry=RetryPolicy(max_attempts=3, delay=timedelta(0)))
def flaky(context: TaskContext[int], succeed_on: int) -> int:
    """Fail with ConnectionError until attempt `succeed_on`, then return the attempt."""
    if context.attempt < succeed_on:
        raise ConnectionError(f"attempt {context.attempt} failed")
    return context.attempt


@task(retry=RetryPolicy(max_attempts=5, retry_on=(ConnectionError,), delay=timedelta(0)))
def not_retryable(message: str) -> None:
    """Raise an exception the policy does not retry."""
    raise ValueError(message)


@task(takes_context=True)
def asks_for_retry(context: TaskContext[int]) -> int:
    """Ask for another attempt once, with no policy of its own."""
    if context.attempt == 1:
        raise Retry("not yet", delay=timedelta(0))
    return context.attempt


@task(
    takes_context=True,
    retry=RetryPolicy(max_attempts=3, delay=timedelta(seconds=0.3), backoff=2),
)
def backs_off(context: TaskContext[str], key: str) -> int:
    """Record each attempt's time, failing until the third."""
    import os

    from tests.models import Run

    Run.objects.create(key=f"{key}:{context.attempt}", pid=os.getpid())
    if context.attempt < 3:
        raise ConnectionError("try later")
    return context.attempt


@task
def run_key(run: Run) -> str:
    """Take a model instance; it travels as its primary key."""
    return f"{run.key}:{run.pid}"


@task
def run_keys(runs: list[Run]) -> list[str]:
    """Take a list of model instances, fetched again with one query."""
    return [run.key for run in runs]


@task
def maybe_run(run: Run | None) -> str | None:
    """Take an optional model instance."""
    return None if run is None else run.key


@task
def make_run(key: str) -> Run:
    """Return a model instance; `return_value` fetches it again."""
    return Run.objects.create(key=key, pid=0)


@task
def decoded_file_name(name: str) -> str:
    """Return `name` as `os.fsdecode` gives a file name that is not UTF-8: the bytes that
    do not decode become lone surrogates, text no database can store."""
    import os

    return os.fsdecode(name.encode("latin-1"))


@task
def imported_at_the_end(item: DefinedLater) -> str:
    """Take a type the module imports only at its end, as a project breaks an import cycle."""
    return item.label


from tests.later import DefinedLater  # noqa: E402 - at the end on purpose

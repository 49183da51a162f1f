"""The shop's background tasks: typed arguments in, typed results out.

Every argument is validated against these annotations when a task is enqueued, travels
as JSON, and reaches the function as its declared type again on the worker: a
`Customer` arrives as a `Customer`, a `Decimal` as a `Decimal`. Return values make the
same trip back, so `send_receipt.get_result(id).return_value` is a `Receipt`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid5

from django.core.mail import send_mail
from django.db.models import Sum
from django.utils import timezone
from pydantic import BaseModel

from django_tasks import RetryPolicy, TaskContext, task
from shop.models import Currency, Order

PAYMENT_PROVIDER = UUID("6f1c2b4e-52f4-4d47-9b3c-5a8e0d2f7c10")
CENT = Decimal("0.01")


class Customer(BaseModel):
    """Who placed an order."""

    name: str
    email: str


@dataclasses.dataclass(frozen=True)
class LineItem:
    """A product, its quantity and the unit price charged."""

    sku: str
    unit_price: Decimal
    quantity: int


class Receipt(BaseModel):
    """What `send_receipt` sent: the order, its total, and the address."""

    order_id: int
    total: Decimal
    currency: Currency
    sent_to: str


class SalesReport(BaseModel):
    """The orders of one day and the revenue in each currency."""

    day: date
    orders: int
    revenue: dict[Currency, Decimal]


@dataclasses.dataclass(frozen=True)
class InventorySync:
    """What the warehouse was told, and by which attempt of which task result."""

    sku: str
    quantity: int
    attempt: int
    result_id: str


class UndeliverableEmail(Exception):
    """The customer's mail server refused the email."""


def total_of(items: list[LineItem]) -> Decimal:
    """Return what the items cost together."""
    return sum((item.unit_price * item.quantity for item in items), Decimal("0.00"))


@task(enqueue_on_commit=True)
def send_receipt(
    order_id: int,
    customer: Customer,
    items: list[LineItem],
    currency: Currency,
    placed_at: datetime,
) -> Receipt:
    """Email the receipt of an order and return what it said.

    `enqueue_on_commit=True`: enqueued inside a transaction, the task is stored only when
    the transaction commits, so no receipt goes out for an order that rolled back.
    Addresses in the reserved `.invalid` domain stand in for a bounce.
    """
    if customer.email.endswith(".invalid"):
        raise UndeliverableEmail(f"No mail server accepts mail for {customer.email}.")
    total = total_of(items)
    lines = "".join(f"{item.quantity} x {item.sku} at {item.unit_price}\n" for item in items)
    placed = f"{placed_at:%Y-%m-%d %H:%M %Z}"
    body = f"Hello {customer.name},\n\n{lines}Total: {total} {currency}\nPlaced {placed}.\n"
    send_mail(f"Your order {order_id}", body, None, [customer.email])
    return Receipt(order_id=order_id, total=total, currency=currency, sent_to=customer.email)


@task
def charge_card(payment_id: UUID, amount: Decimal, currency: Currency) -> UUID:
    """Charge the customer's card and return the payment provider's transaction id.

    The provider deduplicates on `payment_id`, so running the task twice (delivery is at
    least once) charges once; here a name-based UUID stands in for its reply.
    """
    return uuid5(PAYMENT_PROVIDER, f"{payment_id}:{amount}:{currency}")


@task
async def schedule_delivery(order_id: int, placed_at: datetime) -> date:
    """Book the carrier and return the delivery day, two working days after the order."""
    await asyncio.sleep(0.01)  # Stands in for the carrier's HTTP API.
    return next_working_day(next_working_day(placed_at.date()))


def next_working_day(day: date) -> date:
    """Return the first day after `day` that is not a Saturday or a Sunday."""
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@task(takes_context=True)
def sync_inventory(context: TaskContext[InventorySync], sku: str, quantity: int) -> InventorySync:
    """Tell the warehouse that `quantity` units of `sku` were sold.

    The context names this attempt and its result id: after a lost worker the task runs
    again with `attempt == 2`, and the warehouse deduplicates on the result id.
    """
    return InventorySync(
        sku=sku, quantity=quantity, attempt=context.attempt, result_id=context.task_result.id
    )


@task(queue_name="reports", priority=-10)
def sales_report(day: date) -> SalesReport:
    """Count the orders of `day` and add up the revenue in each currency.

    On the `reports` queue, so dedicated workers can serve it; with a low priority, so a
    worker serving every queue runs the customers' tasks first.
    """
    orders = Order.objects.filter(placed_at__date=day)
    totals = orders.values_list("currency").annotate(Sum("total")).order_by("currency")
    # SQLite adds decimals up as floats; round back to cents (exact below 10**13).
    revenue = {Currency(currency): total.quantize(CENT) for currency, total in totals}
    return SalesReport(day=day, orders=orders.count(), revenue=revenue)


@task
def ask_for_review(order_id: int, email: str) -> datetime:
    """Ask the customer to review the order, and return when the email went out.

    Meant to be deferred: `ask_for_review.using(run_after=timedelta(days=3)).enqueue(...)`.
    """
    send_mail(f"How was order {order_id}?", "Tell us what you think.", None, [email])
    return timezone.now()


class WarehouseBusy(Exception):
    """The warehouse asked us to come back later: worth another try."""


@task(
    takes_context=True,
    retry=RetryPolicy(
        max_attempts=4,
        retry_on=(WarehouseBusy,),
        delay=timedelta(seconds=0.2),
        backoff=2,
        jitter=0.1,
    ),
)
def reserve_stock(context: TaskContext[Order], order: Order) -> Order:
    """Reserve an order's stock; the order travels as its primary key and comes back fresh.

    The warehouse is busy on the first attempt for every third order, so the policy's
    retries show: those results end SUCCESSFUL after 2 attempts, with the first error kept.
    """
    if order.pk % 3 == 0 and context.attempt == 1:
        raise WarehouseBusy(f"The warehouse is busy; order {order.pk} must wait.")
    return order

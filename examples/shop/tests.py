"""The shop's tasks on the Immediate and Dummy backends, and its pages with the test client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client, override_settings
from django.urls import reverse

from django_tasks import (
    BaseTaskBackend,
    InvalidTaskError,
    TaskResultStatus,
    default_task_backend,
)
from django_tasks.backends.database.models import DBTaskResult
from shop.models import Currency, Order
from shop.orders import place_order
from shop.tasks import (
    PAYMENT_PROVIDER,
    Customer,
    InventorySync,
    LineItem,
    Receipt,
    SalesReport,
    UndeliverableEmail,
    ask_for_review,
    charge_card,
    sales_report,
    schedule_delivery,
    send_receipt,
    sync_inventory,
)

ADA = Customer(name="Ada", email="ada@example.com")
BOB = Customer(name="Bob", email="bob@shop.invalid")
ITEMS = [
    LineItem(sku="mug", unit_price=Decimal("8.50"), quantity=2),
    LineItem(sku="poster", unit_price=Decimal("12.00"), quantity=1),
]
FRIDAY = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
DUMMY = "django_tasks.backends.dummy.DummyBackend"
ORDER_FORM = {"name": "Ada", "email": "ada@example.com", "currency": "EUR", "mug": "2"}


def backend_setting(path: str) -> dict[str, dict[str, object]]:
    """Return a TASKS setting whose default backend is `path`, with the shop's queues."""
    return {"default": {"BACKEND": path, "QUEUES": ["default", "reports"]}}


@pytest.fixture
def immediate() -> Iterator[BaseTaskBackend]:
    """Run every task as it is enqueued, through the JSON round trip a worker makes."""
    with override_settings(TASKS=backend_setting(IMMEDIATE)):
        yield default_task_backend


@pytest.fixture
def dummy() -> Iterator[BaseTaskBackend]:
    """Keep every enqueued task without running it, until a test calls `run_ready()`."""
    with override_settings(TASKS=backend_setting(DUMMY)):
        yield default_task_backend


def test_send_receipt__returns_a_receipt_and_emails_it(immediate, mailoutbox):
    result = send_receipt.enqueue(7, ADA, ITEMS, Currency.EUR, FRIDAY)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == Receipt(
        order_id=7, total=Decimal("29.00"), currency=Currency.EUR, sent_to="ada@example.com"
    )
    assert type(result.return_value.currency) is Currency
    assert result.args == [7, ADA, ITEMS, Currency.EUR, FRIDAY]
    assert [(mail.subject, mail.to) for mail in mailoutbox] == [
        ("Your order 7", ["ada@example.com"])
    ]


def test_send_receipt__undeliverable_address_fails_with_its_traceback(immediate):
    result = send_receipt.enqueue(8, BOB, ITEMS, Currency.USD, FRIDAY)

    assert result.status == TaskResultStatus.FAILED
    assert result.exception_class is UndeliverableEmail
    assert result.traceback is not None
    assert result.traceback.strip().splitlines()[-1] == (
        "shop.tasks.UndeliverableEmail: No mail server accepts mail for bob@shop.invalid."
    )
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


def test_enqueue__refuses_arguments_of_the_wrong_type_naming_each(immediate):
    with pytest.raises(InvalidTaskError) as raised:
        send_receipt.enqueue("7", ADA, ITEMS, "EUR", FRIDAY)  # type: ignore[arg-type]

    assert [error["loc"] for error in raised.value.errors] == [("order_id",), ("currency",)]


def test_charge_card__returns_the_same_transaction_id_each_time(immediate):
    payment_id = uuid.UUID("0b8f3f4e-8a53-4b7a-a3ad-0f8f1bb1d7a4")

    first = charge_card.enqueue(payment_id, Decimal("29.00"), Currency.EUR)
    second = charge_card.enqueue(payment_id, Decimal("29.00"), Currency.EUR)

    expected = uuid.uuid5(PAYMENT_PROVIDER, f"{payment_id}:29.00:EUR")
    assert (first.return_value, second.return_value) == (expected, expected)
    assert type(first.return_value) is uuid.UUID


@pytest.mark.parametrize(
    ("placed_at", "delivery"),
    [
        pytest.param(datetime(2026, 11, 23, 9, tzinfo=UTC), date(2026, 11, 25), id="monday"),
        pytest.param(FRIDAY, date(2026, 12, 1), id="friday"),
        pytest.param(datetime(2026, 11, 28, 9, tzinfo=UTC), date(2026, 12, 1), id="saturday"),
    ],
)
def test_schedule_delivery__is_two_working_days_later(immediate, placed_at, delivery):
    result = schedule_delivery.enqueue(1, placed_at)

    assert result.return_value == delivery


def test_sync_inventory__receives_its_context(immediate):
    result = sync_inventory.enqueue("mug", 2)

    assert result.return_value == InventorySync(
        sku="mug", quantity=2, attempt=1, result_id=result.id
    )


@pytest.mark.django_db
def test_sales_report__adds_up_the_day_in_each_currency(immediate):
    for currency, total, placed_at in [
        (Currency.EUR, "17.00", FRIDAY),
        (Currency.EUR, "12.00", FRIDAY),
        (Currency.USD, "8.50", FRIDAY),
        (Currency.USD, "99.00", FRIDAY + timedelta(days=1)),
    ]:
        Order.objects.create(
            name="Ada", email=ADA.email, currency=currency, total=total, placed_at=placed_at
        )

    result = sales_report.enqueue(FRIDAY.date())

    assert (result.task.queue_name, result.task.priority) == ("reports", -10)
    assert result.return_value == SalesReport(
        day=FRIDAY.date(),
        orders=3,
        revenue={Currency.EUR: Decimal("29.00"), Currency.USD: Decimal("8.50")},
    )
    assert [str(total) for total in result.return_value.revenue.values()] == ["29.00", "8.50"]


def test_ask_for_review__deferred_runs_only_once_due(dummy, mailoutbox):
    ask_for_review.using(run_after=timedelta(days=3)).enqueue(7, "ada@example.com")

    assert dummy.run_ready() == []
    [done] = dummy.run_ready(include_deferred=True)

    assert type(done.return_value) is datetime
    assert [mail.to for mail in mailoutbox] == [["ada@example.com"]]


@pytest.mark.django_db(transaction=True)
def test_place_order__enqueues_the_receipt_only_on_commit(dummy):
    with transaction.atomic():
        order, receipt = place_order(ADA, {"mug": 2, "poster": 0}, Currency.EUR)
        assert dummy.results == []

    [enqueued] = dummy.results
    assert enqueued.id == receipt.id
    assert enqueued.args == [
        order.pk,
        ADA,
        [LineItem(sku="mug", unit_price=Decimal("8.50"), quantity=2)],
        Currency.EUR,
        order.placed_at,
    ]


@pytest.mark.django_db(transaction=True)
def test_place_order__rolled_back_enqueues_nothing(dummy):
    def place_order_then_crash() -> None:
        with transaction.atomic():
            place_order(ADA, {"mug": 2}, Currency.EUR)
            raise RuntimeError("the payment page crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        place_order_then_crash()

    assert dummy.results == []
    assert not Order.objects.exists()


def test_order_view__shows_the_form(client: Client):
    response = client.get(reverse("shop:order"))

    assert response.status_code == 200
    assert b"Place an order" in response.content


def test_order_view__without_products_enqueues_nothing(client: Client, dummy):
    response = client.post(reverse("shop:order"), {**ORDER_FORM, "mug": "0"})

    assert response.status_code == 200
    assert b"Choose at least one product." in response.content
    assert dummy.results == []


def test_order_view__a_refused_quantity_is_the_only_error(client: Client, dummy):
    response = client.post(reverse("shop:order"), {**ORDER_FORM, "mug": "21"})

    assert response.status_code == 200
    assert b"Ensure this value is less than or equal to 20." in response.content
    assert b"Choose at least one product." not in response.content
    assert dummy.results == []


@pytest.mark.django_db(transaction=True)
def test_order_view__redirects_to_the_sent_receipt(client: Client, immediate, mailoutbox):
    response = client.post(reverse("shop:order"), ORDER_FORM, follow=True)

    [(url, status)] = response.redirect_chain
    assert (url.startswith("/receipts/"), status) == (True, 302)
    assert b"Successful" in response.content
    assert b"17.00 EUR" in response.content
    assert b'http-equiv="refresh"' not in response.content
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_receipt_view__shows_the_error_of_a_failed_task(client: Client, immediate):
    form = {**ORDER_FORM, "email": BOB.email}

    response = client.post(reverse("shop:order"), form, follow=True)

    assert b"Failed" in response.content
    assert b"UndeliverableEmail: No mail server accepts mail for bob@shop.invalid." in (
        response.content
    )


@pytest.mark.django_db(transaction=True)
def test_receipt_view__on_the_database_waits_for_a_worker_and_reloads(client: Client):
    _, receipt = place_order(ADA, {"mug": 1}, Currency.EUR)

    response = client.get(reverse("shop:receipt", args=[receipt.id]))

    assert response.status_code == 200
    assert b"Ready" in response.content
    assert b'<meta http-equiv="refresh" content="1">' in response.content


@pytest.mark.django_db(transaction=True)
def test_receipt_view__while_a_worker_runs_it_says_so_and_reloads(client: Client):
    _, receipt = place_order(ADA, {"mug": 1}, Currency.EUR)
    now = datetime.now(UTC)
    DBTaskResult.objects.filter(id=receipt.id).update(
        status="RUNNING",
        worker_id="w1",
        started_at=now,
        last_attempted_at=now,
        lease_expires_at=now + timedelta(minutes=1),
    )

    response = client.get(reverse("shop:receipt", args=[receipt.id]))

    assert b"Running" in response.content
    assert b"A worker is running it" in response.content
    assert b"Waiting for a worker" not in response.content
    assert b'<meta http-equiv="refresh" content="1">' in response.content


@pytest.mark.django_db(transaction=True)
def test_receipt_view__before_the_commit_is_a_404_that_says_why(client: Client):
    with transaction.atomic():
        _, receipt = place_order(ADA, {"mug": 1}, Currency.EUR)
        before = client.get(reverse("shop:receipt", args=[receipt.id]))
    after = client.get(reverse("shop:receipt", args=[receipt.id]))

    assert before.status_code == 404
    assert b"its order is not committed yet" in before.content
    assert after.status_code == 200


@pytest.mark.django_db
def test_receipt_view__unknown_id_is_a_404(client: Client):
    response = client.get(reverse("shop:receipt", args=[uuid.uuid4()]))

    assert response.status_code == 404
    assert b"No such receipt" in response.content


@pytest.mark.django_db
def test_receipt_view__id_of_another_task_is_a_404(client: Client):
    charge = charge_card.enqueue(uuid.uuid4(), Decimal("8.50"), Currency.EUR)

    response = client.get(reverse("shop:receipt", args=[charge.id]))

    assert response.status_code == 404
    assert b"the id belongs to another task" in response.content


@pytest.mark.django_db
def test_reserve_stock__retries_a_busy_warehouse_and_returns_the_fresh_order(immediate):
    from shop.tasks import reserve_stock

    orders = [Order.objects.create(email=f"c{n}@example.com", total=Decimal(1)) for n in range(3)]
    busy = next(order for order in orders if order.pk % 3 == 0)

    result = reserve_stock.enqueue(busy)

    assert result.return_value == busy
    assert result.return_value is not busy
    assert result.attempts == 2
    assert result.errors[0].exception_class_path == "shop.tasks.WarehouseBusy"

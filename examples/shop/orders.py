"""Placing an order: the order and its lines, then its receipt once they are committed."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from django_tasks import TaskResult
from shop.models import CATALOGUE, Currency, Order, OrderLine
from shop.tasks import Customer, LineItem, Receipt, send_receipt, total_of


def line_items(quantities: Mapping[str, int]) -> list[LineItem]:
    """Return the line items for a quantity of each product, at today's prices."""
    return [
        LineItem(sku=sku, unit_price=CATALOGUE[sku], quantity=quantity)
        for sku, quantity in quantities.items()
        if quantity > 0
    ]


def place_order(
    customer: Customer, quantities: Mapping[str, int], currency: Currency
) -> tuple[Order, TaskResult[Receipt]]:
    """Store an order and enqueue its receipt, which is stored when the order commits.

    Inside the transaction, `send_receipt.enqueue` validates its arguments at once (a bad
    one raises here and rolls the order back) but stores the task only at the commit,
    because the task is declared with `enqueue_on_commit=True`.
    """
    items = line_items(quantities)
    with transaction.atomic():
        order = Order.objects.create(
            name=customer.name, email=customer.email, currency=currency, total=total_of(items)
        )
        OrderLine.objects.bulk_create(
            OrderLine(order=order, sku=i.sku, unit_price=i.unit_price, quantity=i.quantity)
            for i in items
        )
        receipt = send_receipt.enqueue(order.pk, customer, items, currency, order.placed_at)
    return order, receipt

"""Orders and their lines; prices live in `CATALOGUE` to keep the example small."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

CATALOGUE: dict[str, Decimal] = {
    "mug": Decimal("8.50"),
    "tshirt": Decimal("19.90"),
    "poster": Decimal("12.00"),
}


class Currency(models.TextChoices):
    """The currencies the shop sells in; an enum that tasks take and return too."""

    EUR = "EUR", "Euro"
    USD = "USD", "US dollar"


class Order(models.Model):
    """One order placed on the site."""

    name = models.CharField(max_length=100)
    email = models.EmailField()
    currency = models.CharField(max_length=3, choices=Currency)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    placed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Order {self.pk} by {self.email}"


class OrderLine(models.Model):
    """A product and its quantity in an order, at the price of the day."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=20)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

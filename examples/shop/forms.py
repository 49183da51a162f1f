"""The order form: who orders, in which currency, and how many of each product."""

from __future__ import annotations

from typing import Any

from django import forms

from shop.models import CATALOGUE, Currency
from shop.tasks import Customer


class OrderForm(forms.Form):
    """Ask for the customer, the currency and a quantity of each product."""

    name = forms.CharField(max_length=100)
    email = forms.EmailField()
    currency = forms.ChoiceField(choices=Currency.choices, initial=Currency.EUR)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for sku, price in CATALOGUE.items():
            self.fields[sku] = forms.IntegerField(
                label=f"{sku} ({price})", min_value=0, max_value=20, initial=0, required=False
            )

    def clean(self) -> dict[str, Any]:
        """Require at least one product, unless a quantity given was already refused."""
        cleaned = super().clean() or {}
        refused = any(sku in self.errors for sku in CATALOGUE)
        if not refused and not any(cleaned.get(sku) for sku in CATALOGUE):
            raise forms.ValidationError("Choose at least one product.")
        return cleaned

    def customer(self) -> Customer:
        """Return the customer of a valid form."""
        return Customer(name=self.cleaned_data["name"], email=self.cleaned_data["email"])

    def quantities(self) -> dict[str, int]:
        """Return the quantity of each product of a valid form."""
        return {sku: self.cleaned_data.get(sku) or 0 for sku in CATALOGUE}

    def chosen_currency(self) -> Currency:
        """Return the currency of a valid form, as the enum the tasks take."""
        return Currency(self.cleaned_data["currency"])

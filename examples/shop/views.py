"""Place an order, then watch its receipt task until it has finished."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from django_tasks import TaskResult, TaskResultDoesNotExist, TaskResultStatus
from shop.forms import OrderForm
from shop.orders import place_order
from shop.tasks import Receipt, send_receipt


def order(request: HttpRequest) -> HttpResponse:
    """Show the order form; on a valid POST, place the order and go to its receipt."""
    form = OrderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, receipt = place_order(form.customer(), form.quantities(), form.chosen_currency())
        return redirect("shop:receipt", result_id=receipt.id)
    return render(request, "shop/order_form.html", {"form": form})


def receipt(request: HttpRequest, result_id: UUID) -> HttpResponse:
    """Show the status of a receipt task, and the receipt once it has been sent.

    The page reloads itself until the task has finished. An unknown id (not committed
    yet, pruned, or another task's) is a 404 that says so.
    """
    try:
        result = send_receipt.get_result(str(result_id))
    except TaskResultDoesNotExist:
        context = {"result_id": result_id}
        return render(request, "shop/receipt_missing.html", context, status=404)
    return render(request, "shop/receipt.html", receipt_context(result))


def receipt_context(result: TaskResult[Receipt]) -> dict[str, Any]:
    """Return the template context for a receipt task's result."""
    succeeded = result.status == TaskResultStatus.SUCCESSFUL
    return {
        "result": result,
        "receipt": result.return_value if succeeded else None,
        "error": result.traceback.strip().splitlines()[-1] if result.traceback else None,
    }

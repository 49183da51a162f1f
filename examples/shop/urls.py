"""The shop's pages: the order form and the receipt of an order."""

from django.urls import path

from shop import views

app_name = "shop"
urlpatterns = [
    path("", views.order, name="order"),
    path("receipts/<uuid:result_id>/", views.receipt, name="receipt"),
]

"""The shop app."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """Orders placed on the site, with their receipts and reports run as tasks."""

    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

"""Expose the shop as a WSGI callable named `application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_project.settings")

application = get_wsgi_application()

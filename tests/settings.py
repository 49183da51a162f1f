"""Settings for the test suite: SQLite by default, or the database in DATABASE_URL."""

from __future__ import annotations

import os
import tempfile
from urllib.parse import urlsplit

SECRET_KEY = "django_tasks tests only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_tasks",
    "django_tasks.backends.database",
    "tests",
]


def database_from_url(url: str) -> dict[str, object]:
    """Return a Django DATABASES entry for a sqlite://, postgres:// or mysql:// URL."""
    parts = urlsplit(url)
    engines = {
        "sqlite": "django.db.backends.sqlite3",
        "postgres": "django.db.backends.postgresql",
        "postgresql": "django.db.backends.postgresql",
        "mysql": "django.db.backends.mysql",
        "mariadb": "django.db.backends.mysql",
    }
    if parts.scheme == "sqlite":
        # A file, not memory, so worker processes started by the tests share it.
        path = parts.path[1:] if parts.path.startswith("//") else parts.path.lstrip("/")
        test_path = os.environ.get(
            "TASKS_SQLITE_TEST_PATH",
            # One per process, so concurrent test runs never share a file.
            os.path.join(tempfile.gettempdir(), f"django_tasks_test_{os.getpid()}.sqlite3"),
        )
        return {
            "ENGINE": engines["sqlite"],
            "NAME": path or test_path,
            "TEST": {"NAME": test_path},
            "OPTIONS": {
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    return {
        "ENGINE": engines[parts.scheme],
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "TEST": {"NAME": f"test_{parts.path.lstrip('/')}_tasks"},
    }


DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", "sqlite:///"))}

if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    # The tests use PyMySQL, which needs no C library, in place of mysqlclient.
    import pymysql

    pymysql.version_info = (2, 2, 1, "final", 0)
    pymysql.install_as_MySQLdb()

TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
        "QUEUES": ["default", "reports"],
    },
    "database": {
        "BACKEND": "django_tasks.backends.database.DatabaseBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {"LEASE_SECONDS": float(os.environ.get("TASKS_LEASE_SECONDS", "60"))},
    },
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"

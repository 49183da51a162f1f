"""`manage.py check` on the examples project with a misconfigured backend: E001, no traceback.

Importing a tasks module declares its tasks on the backend; a backend that cannot be built
(bad `OPTIONS`) must still reach the system check and be reported there, with its hint.
"""

from __future__ import annotations

import os
import subprocess
import sys

import django
import pytest
from django.db import connection

from tests.acceptance.conftest import ROOT

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the examples project runs on a SQLite file of its own: runs once, in the SQLite pass",
)

BAD_OPTIONS = """
from shop_project.settings import *  # noqa: F403

TASKS = {"default": {**TASKS["default"], "OPTIONS": {"LEASE_SECONDS": 0}}}  # noqa: F405
"""


def test_check__a_backend_with_bad_options_is_reported_as_E001_by_manage_py_check(tmp_path):
    (tmp_path / "bad_settings.py").write_text(BAD_OPTIONS, encoding="utf-8")
    env = {
        **{key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
        "DJANGO_SETTINGS_MODULE": "bad_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "examples"), str(ROOT)]),
    }

    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT / "examples",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    problem = (
        "TASKS['default']['OPTIONS'] is invalid: LEASE_SECONDS: Input should be greater than 0."
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # Importing the project's tasks modules did not stop the check before it could report.
    assert "shop/tasks.py" not in done.stderr, done.stderr
    if django.VERSION >= (6, 0):
        # Django's own TASKS check builds every backend and lets the error out (README).
        assert "django/tasks/checks.py" in done.stderr, done.stderr
        assert f"InvalidTaskBackend: {problem}" in done.stderr, done.stderr
    else:
        assert "Traceback" not in done.stderr, done.stderr
        assert f"TASKS['default']: (django_tasks.E001) {problem}" in done.stderr, done.stderr

"""Rows no `enqueue` would write: dangerous task paths, broken payloads, stale arguments.

None of them runs anything; each is FAILED with its reason; the worker goes on. This
extends `tests/acceptance/test_worker_processes.py::test_worker__bad_rows_fail_with_their_
reason_and_the_worker_goes_on` with more rows, and counts them for the long form's table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from django_tasks import TaskResultStatus
from django_tasks.backends.database.models import DBTaskResult
from tests.acceptance.conftest import OUTPUT, insert_row
from tests.reliability import reliability_tasks
from tests.reliability.conftest import audit

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

INVALID = "django_tasks.exceptions.InvalidTask"
MARKER = OUTPUT / "hostile-rows-marker"
"""The file the dangerous rows would create if the worker ever ran them."""
SHAPE = "are not an object with an 'args' list and a 'kwargs' object"


def payload(*args: object, **kwargs: object) -> str:
    return json.dumps({"args": list(args), "kwargs": kwargs})


def nested(depth: int) -> str:
    return '{"args": [' + "[" * depth + "]" * depth + '], "kwargs": {}}'


# id: (task path, stored payload, a fragment of the reason it fails with)
ROWS: dict[str, tuple[str, str, str]] = {
    "os.system": (
        "os.system",
        payload(f"touch {MARKER}"),
        "'os.system' is not a registered task",
    ),
    "subprocess.call": (
        "subprocess.call",
        payload(["touch", str(MARKER)]),
        "'subprocess.call' is not a registered task",
    ),
    "call_command": (
        "django.core.management.call_command",
        payload("flush", interactive=False),
        "'django.core.management.call_command' is not a registered task",
    ),
    "builtins.exec": (
        "builtins.exec",
        payload(f"open({str(MARKER)!r}, 'w')"),
        "'builtins.exec' is not a registered task",
    ),
    "a model class": ("tests.models.Run", payload(key="x", pid=1), "is not a registered task"),
    "an undecorated function": ("tests.tasks.no_parameters", payload(), "is not a registered task"),
    "an attribute of a task module": (
        "tests.reliability.reliability_tasks.os.system",
        payload(f"touch {MARKER}"),
        "cannot be run: importing",
    ),
    "a missing module of an installed app": (
        "tests.no_such_module.task",
        payload(),
        "No module named 'tests.no_such_module'",
    ),
    "a module outside the installed apps": (
        "no.such.module.task",
        payload(),
        "is not a registered task",
    ),
    "a module that raises on import": (
        "tests.reliability.explodes_on_import.task",
        payload(),
        "cannot be imported",
    ),
    "an empty path": ("", payload(), "is not a registered task"),
    "payload not JSON": ("tests.tasks.add", "this is not json", "are not valid JSON"),
    "payload empty": ("tests.tasks.add", "", "are not valid JSON"),
    "payload truncated": ("tests.tasks.add", '{"args": [1, ', "are not valid JSON"),
    "payload NaN": ("tests.tasks.add", '{"args": [NaN, 1], "kwargs": {}}', "are not valid JSON"),
    "payload nested 100,000 deep": ("tests.tasks.echo", nested(100_000), "are not valid JSON"),
    "payload a JSON list": ("tests.tasks.add", "[1, 2]", SHAPE),
    "payload JSON null": ("tests.tasks.add", "null", SHAPE),
    "payload without kwargs": ("tests.tasks.add", '{"args": [1, 2]}', SHAPE),
    "args an object": ("tests.tasks.add", '{"args": {"a": 1}, "kwargs": {}}', SHAPE),
    "kwargs a list": ("tests.tasks.add", '{"args": [1, 2], "kwargs": [3]}', SHAPE),
    "argument of the wrong type": (
        "tests.tasks.measure",
        payload({"value": "lots"}),
        "'measurement.value': Input should be a valid number",
    ),
    "a parameter since removed": (
        "tests.tasks.add",
        payload(1, 2, c=3),
        "got an unexpected keyword argument 'c'",
    ),
    "a parameter since added": ("tests.tasks.add", payload(1), "'b': missing required argument"),
    "too many positional arguments": (
        "tests.tasks.positional_only",
        payload(1, 2),
        "takes 1 positional argument but 2",
    ),
    "a context passed as an argument": (
        "tests.tasks.with_context",
        payload(context={"attempt": 99}, name="x"),
        "got an unexpected keyword argument 'context'",
    ),
}


def test_hostile_rows__none_runs_each_fails_with_its_reason_the_worker_goes_on(fleet, report):
    MARKER.unlink(missing_ok=True)
    rows, good = {}, {}
    task = reliability_tasks.record.using(backend="database")
    for n, (name, (path, data, _)) in enumerate(ROWS.items()):
        rows[name] = insert_row(path, data)
        good[task.enqueue(f"after-{n}").id] = f"after-{n}"

    worker = fleet.start("--batch")
    code = worker.wait(120)

    problems = []
    for name, row_id in rows.items():
        row = DBTaskResult.objects.get(id=row_id)
        last = row.errors[-1] if row.errors else {}
        fragment = ROWS[name][2]
        if row.status != TaskResultStatus.FAILED or row.worker_ids != ["worker-1"]:
            problems.append(f"{name}: {row.status} after {row.worker_ids}")
        elif last.get("exception_class_path") != INVALID or fragment not in last["traceback"]:
            problems.append(
                f"{name}: {last.get('exception_class_path')}: {last.get('traceback', '')[-400:]}"
            )
    ran_anything = Path(MARKER).exists()
    good_audit = audit(good)
    report.add(
        f"hostile rows, {len(ROWS)} kinds: os.system, subprocess.call, call_command, exec, "
        "undecorated or missing or exploding modules, payloads not JSON or of the wrong "
        "shape, arguments that no longer fit",
        tasks=len(rows) + len(good),
        ran=f"{good_audit.ran} good, {int(ran_anything)} hostile",
        lost=len(good_audit.lost),
        twice=len(good_audit.twice_beyond_lease_rule),
        wedged=0 if code == 0 else 1,
        notes="; ".join(problems) or "each hostile row FAILED with InvalidTask naming its reason",
    )
    assert not ran_anything
    assert problems == []
    assert good_audit.lost == []
    assert good_audit.executions == len(good)
    assert code == 0, worker.output()[-3000:]

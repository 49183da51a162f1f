"""What validating and encoding a task call costs at enqueue, next to the untyped path.

For a 3-argument task and a 10-argument task with nested typed containers, it times:

- the library's validation plus serialization alone: `task.signature.bind_call(...)` then
  `_serialization.dumps_call(...)` with the orjson serializer, which is what a backend's
  `prepare()` does minus building the result; the issue's targets apply to this row;
- the whole `backend.prepare(task, args, kwargs)`;
- Django's untyped path for the same arguments in their JSON form: `normalize_json` (an
  equivalent of Django 6's `django.utils.json.normalize_json`, which Django 5.2 lacks) then
  `json.dumps` or `orjson.dumps`, plus a copy matching on the `Mapping`/`Sequence` ABCs as
  Django 6's own does, which costs noticeably more;
- bare pydantic with the same types and strict config: a `BaseModel` and a `TypeAdapter`
  over a `TypedDict`, each validating already-named arguments and dumping them with orjson
  (and, as the floor, with pydantic's own `dump_json`).

Run with `python -m tests.benchmarks enqueue [--json PATH]`; needs `django.setup()` first,
which `__main__` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from django_tasks import _serialization, task
from django_tasks.serializers import OrjsonSerializer
from django_tasks.tasks import Task
from tests.benchmarks._harness import BenchSettings, Timing, environment, measure, table

TARGETS_US = {"3 args": 8.0, "10 args": 25.0}
"""The issue's targets for validation plus serialization, in µs per enqueue."""

_STRICT = ConfigDict(strict=True, allow_inf_nan=False)


# --- The tasks -------------------------------------------------------------------------


@task
def notify_user(user_id: int, email: str, when: datetime) -> None:
    """Three scalar arguments, the common case."""


@task
def sync_report(
    user_id: int,
    email: str,
    when: datetime,
    scores: dict[str, list[int]],
    rows: list[dict[str, str]],
    tags: list[str],
    ratio: float,
    active: bool,
    note: str | None,
    limits: dict[str, dict[str, int]],
) -> None:
    """Ten arguments, with nested typed dicts and lists."""


WHEN = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

ARGS_3: tuple[Any, ...] = (42, "ada@example.com", WHEN)
KWARGS_3: dict[str, Any] = {}

ARGS_10: tuple[Any, ...] = (42, "ada@example.com", WHEN)
KWARGS_10: dict[str, Any] = {
    "scores": {"math": [90, 85, 77], "physics": [66, 91], "art": [100, 98, 97, 95]},
    "rows": [
        {"sku": "A-1", "name": "widget", "colour": "red"},
        {"sku": "B-2", "name": "gadget", "colour": "blue"},
        {"sku": "C-3", "name": "doohickey", "colour": "green"},
    ],
    "tags": ["weekly", "finance", "priority", "eu"],
    "ratio": 0.75,
    "active": True,
    "note": None,
    "limits": {"daily": {"emails": 10, "sms": 2}, "monthly": {"emails": 200, "sms": 20}},
}


# --- Bare pydantic baselines, with the same types and strict config --------------------


class NotifyUserArgs(BaseModel):
    model_config = _STRICT

    user_id: int
    email: str
    when: datetime


class SyncReportArgs(BaseModel):
    model_config = _STRICT

    user_id: int
    email: str
    when: datetime
    scores: dict[str, list[int]]
    rows: list[dict[str, str]]
    tags: list[str]
    ratio: float
    active: bool
    note: str | None
    limits: dict[str, dict[str, int]]


@with_config(_STRICT)
class NotifyUserDict(TypedDict):
    user_id: int
    email: str
    when: datetime


@with_config(_STRICT)
class SyncReportDict(TypedDict):
    user_id: int
    email: str
    when: datetime
    scores: dict[str, list[int]]
    rows: list[dict[str, str]]
    tags: list[str]
    ratio: float
    active: bool
    note: str | None
    limits: dict[str, dict[str, int]]


# --- Django's untyped path -------------------------------------------------------------


def normalize_json(obj: Any) -> Any:
    """Recursively turn `obj` into JSON-compatible values, the untyped `django.tasks` way.

    Django 5.2 has no `django.utils.json.normalize_json`; this is its equivalent on concrete
    types: dicts become dicts with normalized values, lists and tuples become lists,
    str/int/float/bool/None pass through, and anything else raises `TypeError`.
    """
    if obj is None or isinstance(obj, (str, int, float)):
        return obj
    if isinstance(obj, dict):
        return {key: normalize_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [normalize_json(item) for item in obj]
    raise TypeError(f"Unsupported type: {type(obj)}")


def normalize_json_abc(obj: Any) -> Any:
    """The same, matched as Django 6's `normalize_json` is: on the `Mapping` and `Sequence`
    ABCs, keys normalized too, bytes decoded as UTF-8. The ABC checks make it slower."""
    match obj:
        case Mapping():
            return {
                normalize_json_abc(key): normalize_json_abc(value) for key, value in obj.items()
            }
        case bytes():
            try:
                return obj.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"Unsupported value: {type(obj)}") from None
        case str() | int() | float() | bool() | None:
            return obj
        case Sequence():
            return [normalize_json_abc(item) for item in obj]
        case _:
            raise TypeError(f"Unsupported type: {type(obj)}")


def untyped_json(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    return json.dumps({"args": normalize_json(args), "kwargs": normalize_json(kwargs)})


def untyped_orjson(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    return orjson.dumps({"args": normalize_json(args), "kwargs": normalize_json(kwargs)})


def untyped_abc_orjson(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    return orjson.dumps({"args": normalize_json_abc(args), "kwargs": normalize_json_abc(kwargs)})


# --- The benchmark ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    model: type[BaseModel]
    adapter: TypeAdapter[Any]

    def named(self) -> dict[str, Any]:
        """The arguments by parameter name, as a bare pydantic validator takes them."""
        names = [parameter.name for parameter in self.task.signature.parameters]
        return {**dict(zip(names, self.args, strict=False)), **self.kwargs}


CASES = [
    Case(
        "3 args",
        notify_user,
        ARGS_3,
        KWARGS_3,
        NotifyUserArgs,
        TypeAdapter(NotifyUserDict),
    ),
    Case(
        "10 args",
        sync_report,
        ARGS_10,
        KWARGS_10,
        SyncReportArgs,
        TypeAdapter(SyncReportDict),
    ),
]

ROWS: list[tuple[str, str]] = [
    ("library", "django_tasks: bind_call + dumps_call (orjson)"),
    ("prepare", "django_tasks: backend.prepare()"),
    ("untyped_json", "untyped: normalize_json + json.dumps"),
    ("untyped_orjson", "untyped: normalize_json + orjson.dumps"),
    ("untyped_abc_orjson", "untyped: Django 6 ABC normalize_json + orjson"),
    ("pydantic_model", "pydantic: BaseModel strict + model_dump + orjson"),
    ("pydantic_adapter", "pydantic: TypeAdapter strict + dump_python + orjson"),
    ("pydantic_dump_json", "pydantic: TypeAdapter strict + dump_json"),
]
BASELINE = "untyped_orjson"


def callables(case: Case) -> dict[str, Callable[[], Any]]:
    """Return one zero-argument callable per row, each doing the whole job once."""
    task_ = case.task
    signature = task_.signature
    module_path = task_.module_path
    backend = task_.get_backend()
    serializer = OrjsonSerializer()
    args, kwargs = case.args, case.kwargs
    bound = signature.bind_call(args, kwargs)
    # Django's untyped path takes JSON-compatible values: the same arguments in JSON form.
    json_args = tuple(bound.payload["args"])
    json_kwargs = dict(bound.payload["kwargs"])
    named = case.named()
    model, adapter = case.model, case.adapter

    def library() -> Any:
        return _serialization.dumps_call(module_path, signature.bind_call(args, kwargs), serializer)

    def prepare() -> Any:
        return backend.prepare(task_, args, kwargs)

    def pydantic_model() -> Any:
        return orjson.dumps(model.model_validate(named).model_dump(mode="json"))

    def pydantic_adapter() -> Any:
        return orjson.dumps(adapter.dump_python(adapter.validate_python(named), mode="json"))

    def pydantic_dump_json() -> Any:
        return adapter.dump_json(adapter.validate_python(named))

    return {
        "library": library,
        "prepare": prepare,
        "untyped_json": lambda: untyped_json(json_args, json_kwargs),
        "untyped_orjson": lambda: untyped_orjson(json_args, json_kwargs),
        "untyped_abc_orjson": lambda: untyped_abc_orjson(json_args, json_kwargs),
        "pydantic_model": pydantic_model,
        "pydantic_adapter": pydantic_adapter,
        "pydantic_dump_json": pydantic_dump_json,
    }


def check_outputs(case: Case, funcs: Mapping[str, Callable[[], Any]]) -> None:
    """Make sure every row encodes the same data, so the comparison is fair."""
    expected = orjson.loads(funcs["library"]())
    _, prepared = funcs["prepare"]()
    _assert_same(case, "prepare", orjson.loads(prepared), expected)
    for key in ("untyped_json", "untyped_orjson", "untyped_abc_orjson"):
        _assert_same(case, key, orjson.loads(funcs[key]()), expected)
    names = [parameter.name for parameter in case.task.signature.parameters]
    expected_named = {**dict(zip(names, expected["args"], strict=False)), **expected["kwargs"]}
    for key in ("pydantic_model", "pydantic_adapter", "pydantic_dump_json"):
        _assert_same(case, key, orjson.loads(funcs[key]()), expected_named)


def _assert_same(case: Case, key: str, got: Any, expected: Any) -> None:
    if got != expected:
        raise AssertionError(f"{case.name}/{key} encodes {got!r}, expected {expected!r}")


def run(settings: BenchSettings) -> dict[str, Any]:
    """Time every row for every case, print the table, and return the numbers."""
    timings: dict[str, dict[str, Timing]] = {}
    for case in CASES:
        funcs = callables(case)
        check_outputs(case, funcs)
        timings[case.name] = {key: measure(funcs[key], settings) for key, _ in ROWS}
    print_table(timings, settings)
    return {
        "unit": "microseconds per call",
        "statistic": f"median of {settings.repeat} runs",
        "environment": environment(),
        "targets_us": {"library": TARGETS_US},
        "cases": {
            name: {key: timing.as_dict() for key, timing in rows.items()}
            for name, rows in timings.items()
        },
        "meets_targets": {
            name: timings[name]["library"].median_us < TARGETS_US[name] for name in timings
        },
    }


def print_table(timings: Mapping[str, Mapping[str, Timing]], settings: BenchSettings) -> None:
    names = list(timings)
    headers = ["enqueue", *(f"{name} µs" for name in names), *(f"x {name}" for name in names)]
    rows = []
    for key, label in ROWS:
        cells = [label]
        cells += [f"{timings[name][key].median_us:.2f}" for name in names]
        cells += [
            f"{timings[name][key].median_us / timings[name][BASELINE].median_us:.1f}"
            for name in names
        ]
        rows.append(cells)
    rows.append(
        ["target (issue) for bind_call + dumps_call", *(f"{TARGETS_US[n]:.2f}" for n in names)]
    )
    rows[-1] += [""] * len(names)
    print(
        f"\nenqueue: µs per call, median of {settings.repeat} runs "
        f"(x = relative to '{dict(ROWS)[BASELINE]}')\n"
    )
    print(table(headers, rows))
    verdicts = ", ".join(
        f"{name} {timings[name]['library'].median_us:.2f} µs "
        f"{'<' if timings[name]['library'].median_us < TARGETS_US[name] else '>='} "
        f"{TARGETS_US[name]:.0f} µs"
        for name in names
    )
    print(f"\nvalidation + serialization vs target: {verdicts}")

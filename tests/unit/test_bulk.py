"""The bulk path: `bind_calls`, ready results and ids give what the single path gives."""

from __future__ import annotations

import dataclasses
import gc
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_tasks import InvalidTaskError, TaskResult, TaskResultStatus, _ids
from django_tasks.results import ready_result
from tests import tasks

KINDS = tasks.kinds.signature

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1))
kinds_calls = st.tuples(
    st.tuples(st.integers(-(2**53), 2**53), st.text()).flatmap(
        lambda head: st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3).map(
            lambda rest: (*head, *rest)
        )
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "c": st.booleans(),
            "d": st.none() | st.integers(0, 10),
            "x": dates,
            "y": dates,
        },
    ),
)


@given(st.lists(kinds_calls, max_size=8))
def test_bind_calls__equals_bind_call_for_each(calls: list[tuple[tuple[Any, ...], dict[str, Any]]]):
    assert KINDS.bind_calls(calls) == [KINDS.bind_call(args, kwargs) for args, kwargs in calls]


def test_bind_calls__keyword_calls_split_as_single_calls_do():
    calls = [((1,), {"b": "x"}), ((1, "y", 2.5), {"c": True, "extra": date(2026, 1, 1)})]

    assert KINDS.bind_calls(calls) == [KINDS.bind_call(args, kwargs) for args, kwargs in calls]


def test_bind_calls__names_each_bad_call_by_index():
    calls = [((1, "a"), {}), (("x", "a"), {}), ((1,), {"nope": 1}), ((2, "b"), {})]

    with pytest.raises(InvalidTaskError) as caught:
        KINDS.bind_calls(calls)

    assert str(caught.value).splitlines()[0] == (
        "2 of the calls to task 'tests.tasks.kinds' are invalid, so none was enqueued:"
    )
    # Call 2 has two problems: 'b' is missing and 'nope' is not a date.
    assert [e["loc"][:2] for e in caught.value.errors] == [("call", 1), ("call", 2), ("call", 2)]


def test_bind_calls__refuses_what_json_would_change_naming_the_call():
    odd = timezone(timedelta(hours=1, seconds=30))
    calls = [
        (("Ada", datetime(2026, 1, 1, tzinfo=UTC)), {}),
        (("Bob", datetime(2026, 1, 1, tzinfo=odd)), {}),
    ]

    with pytest.raises(InvalidTaskError, match=r"(?s)call 1: .*'joined': its UTC offset 1:00:30"):
        tasks.make_customer.signature.bind_calls(calls)


def test_ready_result__equals_the_dataclass_constructor():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    made = ready_result(tasks.add, "id-1", [1, 2], {}, "default", now)

    assert made == TaskResult(
        task=tasks.add,
        id="id-1",
        status=TaskResultStatus.READY,
        enqueued_at=now,
        started_at=None,
        finished_at=None,
        last_attempted_at=None,
        args=[1, 2],
        kwargs={},
        backend="default",
    )
    # The lists are the result's own.
    assert made.errors is not ready_result(tasks.add, "id-2", [], {}, "default", now).errors


def test_new_ids__are_increasing_uuid7_of_now():
    before = time.time_ns() // 1_000_000
    ids = _ids.new_ids(5000)
    after = time.time_ns() // 1_000_000

    parsed = [uuid.UUID(value) for value in ids]
    assert [str(value) for value in parsed] == ids
    assert {value.version for value in parsed} == {7}
    assert {value.variant for value in parsed} == {uuid.RFC_4122}
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(before <= value.int >> 80 <= after for value in parsed)


def test_collection_paused__nests_and_restores_the_collector():
    from django_tasks.backends.base import collection_paused

    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collection_paused__leaves_a_disabled_collector_disabled():
    from django_tasks.backends.base import collection_paused

    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_enqueue_many__resumes_the_collector_when_a_call_is_invalid():
    with pytest.raises(InvalidTaskError):
        tasks.add.enqueue_many([tasks.add.arguments(1, 2), tasks.add.arguments("x", 2)])

    assert gc.isenabled()


def test_evolve__equals_dataclasses_replace():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    result = ready_result(tasks.add, "id-1", [1, 2], {}, "default", now)
    changes = {"status": TaskResultStatus.SUCCESSFUL, "finished_at": now, "_return_value": 3}

    assert result.evolve(**changes) == dataclasses.replace(result, **changes)
    assert result.evolve(**changes).return_value == 3
    assert result.status == TaskResultStatus.READY
    with pytest.raises(TypeError):
        result.evolve(colour="red")


_UNSET: Any = object()


def kinds_probe(
    a: Any = _UNSET, /, b: Any = _UNSET, *rest: Any, c: Any = _UNSET, d: Any = _UNSET, **extra: Any
) -> dict[str, Any]:
    """`tasks.kinds`'s parameters, each optional: Python itself binds the call."""
    passed = {"a": a, "b": b, "rest": rest, "c": c, "d": d, "extra": extra}
    return {name: value for name, value in passed.items() if value not in (_UNSET, (), {})}


@given(
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d", "rest", "extra", "z"]), st.integers()),
)
def test_bind__maps_a_call_to_parameters_as_python_does(args: list[int], kwargs: dict[str, int]):
    # Missing arguments are pydantic's to report, so every parameter of the probe is optional.
    try:
        expected: dict[str, Any] | None = kinds_probe(*args, **kwargs)
    except TypeError:
        expected = None
    try:
        bound: dict[str, Any] | None = KINDS._bind(args, kwargs)
    except InvalidTaskError:
        bound = None

    assert bound == expected

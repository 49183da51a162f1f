"""The bulk path: `bind_calls`, ready results and ids give what the single path gives."""

from __future__ import annotations

import dataclasses
import enum
import gc
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, PlainValidator

from django_tasks import InvalidTaskError, TaskResult, TaskResultStatus, _ids, _serialization
from django_tasks._signatures import TaskSignature
from django_tasks.results import new_result
from django_tasks.serializers import OrjsonSerializer
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


def fixed(
    a: int,
    /,
    b: str,
    when: datetime,
    *,
    tags: list[str],
    scores: dict[str, int],
    level: Annotated[int, Field(ge=0)] = 0,
) -> None:
    """No `*args` or `**kwargs`: calls that pass every parameter validate as tuples."""


FIXED = TaskSignature(fixed, takes_context=False, task_path="tests.unit.test_bulk.fixed")
FIXED_VALUES = {
    "a": st.integers(-(2**53), 2**53),
    "b": st.text(max_size=5),
    "when": st.datetimes(timezones=st.just(UTC)),
    "tags": st.lists(st.text(max_size=3), max_size=3),
    "scores": st.dictionaries(st.text(max_size=3), st.integers(-(2**53), 2**53), max_size=2),
    "level": st.integers(0, 3),
}
FIXED_KEYWORDS = {"tags": ["a"], "scores": {"k": 1}, "level": 2}
FIXED_INVALID = {  # a wrong type, an offset JSON would round, a value under the bound
    "a": "1",
    "when": datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=30))),
    "level": -1,
}


@st.composite
def fixed_calls(draw: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call of `fixed`: some parameters positionally, the rest by keyword.

    Now and then one holds a value that fails validation, leaves out `level`, passes an
    unknown keyword, passes `a` by keyword, or passes a keyword-only parameter
    positionally.
    """
    values = {name: draw(strategy) for name, strategy in FIXED_VALUES.items()}
    if draw(st.integers(0, 9)) == 0:
        bad = draw(st.sampled_from(sorted(FIXED_INVALID)))
        values[bad] = FIXED_INVALID[bad]
    names = list(values)
    # Mostly 1 to 3, as Python allows; 0 passes `a` by keyword, over 3 `tags` positionally.
    positional = draw(st.sampled_from([1, 1, 2, 3, 3, 0, 4, 6]))
    kwargs = {name: values[name] for name in names[positional:]}
    if draw(st.integers(0, 9)) == 0:
        kwargs.pop("level", None)
    if draw(st.integers(0, 9)) == 0:
        kwargs["other"] = 1
    return tuple(values[name] for name in names[:positional]), kwargs


def _bound_each(calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any] | str:
    try:
        return [FIXED.bind_call(args, kwargs) for args, kwargs in calls]
    except InvalidTaskError:
        return "invalid"


@given(st.lists(fixed_calls(), max_size=6))
def test_bind_calls__as_tuples_equals_bind_call_for_each(
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
):
    try:
        bound: list[Any] | str = FIXED.bind_calls(calls)
    except InvalidTaskError:
        bound = "invalid"

    assert bound == _bound_each(calls)
    if isinstance(bound, list):  # the payloads are the same JSON, keys in the same order
        singles = [FIXED.bind_call(args, kwargs) for args, kwargs in calls]
        assert [orjson.dumps(b.payload) for b in bound] == [
            orjson.dumps(s.payload) for s in singles
        ]


class Level(enum.IntEnum):
    LOW = 1


class Colour(enum.StrEnum):
    RED = "red"


def plain(
    a: int,
    b: str,
    when: datetime,
    *,
    tags: list[str],
    scores: dict[str, float],
    note: str | None = None,
) -> None:
    """Every parameter but `when` is its own JSON form: bulk enqueues skip their dump."""


def all_plain(a: int, /, b: str | None, *, tags: list[dict[str, int]], ratio: float = 1.0) -> None:
    """Every parameter is its own JSON form: no call is dumped."""


PLAIN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "a": st.integers(-(2**53), 2**53) | st.just(Level.LOW),
    "b": st.text(max_size=5) | st.just(Colour.RED),
    "when": st.datetimes(timezones=st.just(UTC)),
    "tags": st.lists(st.text(max_size=3) | st.just(Colour.RED), max_size=3),
    "scores": st.dictionaries(
        st.text(max_size=3), st.floats(allow_nan=False) | st.integers(0, 9), max_size=2
    ),
    "note": st.none() | st.text(max_size=3),
}
ALL_PLAIN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "a": st.integers(-(2**53), 2**53) | st.just(Level.LOW),
    "b": st.none() | st.text(max_size=5) | st.just(Colour.RED),
    "tags": st.lists(st.dictionaries(st.text(max_size=2), st.integers(0, 9), max_size=2)),
    "ratio": st.floats(allow_nan=False, allow_infinity=False) | st.just(Level.LOW),
}
PLAIN_CASES = [
    (TaskSignature(plain, takes_context=False, task_path="plain"), PLAIN_VALUES),
    (TaskSignature(all_plain, takes_context=False, task_path="all_plain"), ALL_PLAIN_VALUES),
]


@st.composite
def plain_calls(
    draw: st.DrawFn, values_by_name: dict[str, st.SearchStrategy[Any]]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call that passes every parameter, some positionally (as Python allows), or a bad one."""
    values = {name: draw(strategy) for name, strategy in values_by_name.items()}
    if draw(st.integers(0, 9)) == 0:
        values[draw(st.sampled_from(sorted(values)))] = object()
    names = list(values)
    positional = draw(st.integers(1, 3 if "when" in values else 2))
    return tuple(values[name] for name in names[:positional]), {
        name: values[name] for name in names[positional:]
    }


@pytest.mark.parametrize(("signature", "values_by_name"), PLAIN_CASES, ids=["plain", "all_plain"])
@given(data=st.data())
def test_bind_calls__plain_values_skip_the_dump_and_give_its_json(
    signature: TaskSignature, values_by_name: dict[str, st.SearchStrategy[Any]], data: st.DataObject
):
    # All calls alike (validated as split tuples), or each passing its own number positionally
    # (validated as rows).
    calls = data.draw(st.lists(plain_calls(values_by_name), max_size=6))
    try:
        bound: list[Any] | str = signature.bind_calls(calls)
    except InvalidTaskError:
        bound = "invalid"
    try:
        singles: list[Any] | str = [signature.bind_call(a, k) for a, k in calls]
    except InvalidTaskError:
        singles = "invalid"

    assert bound == singles
    if isinstance(bound, str):
        return
    models = signature.build()
    for call, (args, _) in zip(bound, calls, strict=True):
        # What pydantic's own dump gives, split as the call was passed.
        dumped = list(
            models.dump_arguments(
                models.validate_arguments(
                    dict(zip(signature.names, [*call.args, *call.kwargs.values()], strict=True))
                ),
                mode="json",
            ).items()
        )
        expected = {
            "args": [v for _, v in dumped[: len(args)]],
            "kwargs": dict(dumped[len(args) :]),
        }
        assert orjson.dumps(call.payload) == orjson.dumps(expected)
        # Enum members came out as plain values, in the arguments and the payload.
        assert type(call.args[0]) is int
        assert all(type(v) is not Level and type(v) is not Colour for v in call.kwargs.values())


def test_models__which_parameters_are_their_own_json_form():
    plain_models = PLAIN_CASES[0][0].build()

    assert plain_models.native == (True, True, False, True, True, True)
    assert not plain_models.all_native
    assert PLAIN_CASES[1][0].build().all_native
    assert not FIXED.build().all_native  # Annotated may change how a value is written
    assert not KINDS.build().all_native  # *rest and **extra


def test_bind_calls__a_lone_surrogate_dict_key_is_refused_with_ascii_keys_let_through():
    signature = PLAIN_CASES[0][0]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    good = ((1, "x", when), {"tags": [], "scores": {"a": 1.0, "é": 2.0}, "note": None})
    bad = ((1, "x", when), {"tags": [], "scores": {"\ud800": 1.0}, "note": None})

    assert signature.bind_calls([good, good])[1].payload["kwargs"]["scores"] == {"a": 1.0, "é": 2.0}
    with pytest.raises(InvalidTaskError, match=r"(?s)call 1: .*not valid Unicode text"):
        signature.bind_calls([good, bad])


def test_bind_calls__a_dict_of_annotated_values_has_its_values_checked_too():
    # A validator may return anything: here a datetime JSON would round to the minute.
    def loose(a: dict[str, Annotated[int, PlainValidator(lambda value: value)]]) -> None: ...

    signature = TaskSignature(loose, takes_context=False, task_path="loose")
    odd = {"a": datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=30)))}

    assert not signature.build().keys_only
    with pytest.raises(InvalidTaskError, match="UTC offset 0:00:30 has seconds"):
        signature.bind_call((odd,), {})
    with pytest.raises(InvalidTaskError, match="UTC offset 0:00:30 has seconds"):
        signature.bind_calls([((odd,), {}), ((odd,), {})])


class _Bytes(bytes):
    pass


class BytesSubclassSerializer:
    """A project's codec whose bytes are a subclass of `bytes`."""

    def dumps(self, value: Any) -> bytes:
        return _Bytes(orjson.dumps(value))

    def loads(self, data: bytes | str) -> Any:
        return orjson.loads(data)


def test_dumps_calls__takes_a_bytes_subclass_as_bytes():
    bound = FIXED.bind_calls([((1, "x", datetime(2026, 1, 1, tzinfo=UTC)), FIXED_KEYWORDS)])

    encoded, problems = _serialization.dumps_calls("fixed", bound, BytesSubclassSerializer())

    assert problems == []
    assert [orjson.loads(data) for data in encoded] == [bound[0].payload]
    assert [type(data) for data in encoded] == [str]  # decoded, as orjson's bytes are


def test_dumps_calls__keeps_orjsons_bytes_as_right_sized_text():
    calls = [((index, "x", datetime(2026, 1, 1, tzinfo=UTC)), FIXED_KEYWORDS) for index in range(3)]
    bound = FIXED.bind_calls(calls)

    encoded, problems = _serialization.dumps_calls("fixed", bound, OrjsonSerializer())

    assert problems == []
    assert encoded == [orjson.dumps(call.payload).decode() for call in bound]


def test_bind_calls__tuples_only_for_calls_that_pass_every_parameter():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    every = {"tags": [], "scores": {}, "level": 1}

    assert FIXED._rows([((1, "x", when), every)]) == [(1, "x", when, [], {}, 1)]
    assert FIXED._rows([((1,), {"b": "x", "when": when, **every})]) is not None
    assert FIXED._rows([((1, "x", when), {"tags": [], "scores": {}})]) is None  # a default
    assert FIXED._rows([((), {"a": 1, "b": "x", "when": when, **every})]) is None  # a is /
    assert FIXED._rows([((1, "x", when, [], {}, 1), {})]) is None  # tags is keyword-only
    assert FIXED._rows([((1, "x", when), {**every, "level": 1, "other": 2})]) is None


def test_models__star_parameters_keep_calls_as_dicts():
    assert KINDS.build().row_types is None  # *rest and **extra


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


def ready(result_id: str, args: list[Any], now: datetime) -> TaskResult[int]:
    """A READY result of `tasks.add` made as a bulk enqueue makes it."""
    ready = TaskResultStatus.READY
    return new_result(
        tasks.add, result_id, ready, now, None, None, None, args, {}, "default", [], [], None
    )


def test_new_result__equals_the_dataclass_constructor_and_is_frozen():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    made = ready("id-1", [1, 2], now)

    assert type(made) is TaskResult
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
    with pytest.raises(TypeError):  # unhashable, as the constructor's: it holds lists
        hash(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.status = TaskResultStatus.RUNNING  # type: ignore[misc]
    assert dataclasses.replace(made, id="id-2").id == "id-2"


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


def test_enqueue_many__reads_the_callers_generator_in_the_pause():
    collecting = []

    def calls():
        for number in range(3):
            collecting.append(gc.isenabled())
            yield tasks.add.arguments(number, 1)

    assert [r.args for r in tasks.add.enqueue_many(calls())] == [[0, 1], [1, 1], [2, 1]]
    assert collecting == [False, False, False]
    assert gc.isenabled()


def test_enqueue_many__resumes_the_collector_when_the_callers_generator_raises():
    def calls():
        yield tasks.add.arguments(1, 1)
        raise LookupError("no more orders")

    with pytest.raises(LookupError):
        tasks.add.enqueue_many(calls())

    assert gc.isenabled()


def test_evolve__equals_dataclasses_replace():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    result = ready("id-1", [1, 2], now)
    changes = {"status": TaskResultStatus.SUCCESSFUL, "finished_at": now, "_return_value": 3}

    evolved = result.evolve(**changes)
    assert evolved == dataclasses.replace(result, **changes)
    assert type(evolved) is TaskResult
    assert evolved.return_value == 3
    assert result.status == TaskResultStatus.READY
    with pytest.raises(dataclasses.FrozenInstanceError):
        evolved.status = TaskResultStatus.READY  # type: ignore[misc]
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


def test_to_keep__turns_utf8_bytes_into_text_and_leaves_the_rest():
    text = '{"a":"é"}'

    assert _serialization.to_keep(text.encode()) == text
    assert _serialization.to_keep(text) is text
    assert _serialization.to_keep(b"\xff{}") == b"\xff{}"  # not UTF-8: as it was


def test_dumps_calls__keeps_text_for_calls_that_take_the_checked_path():
    customer = tasks.Customer(
        name="Ada",
        joined=datetime(2026, 1, 1, tzinfo=UTC),
        address=tasks.Address(street="Main", number=1),
    )
    item = tasks.LineItem(sku="A-1", price=Decimal("2.50"))
    signature = tasks.order_total.signature
    bound = signature.bind_calls([((), {"items": [item], "customer": customer})] * 2)
    assert all(call.may_hold_nan for call in bound)  # a model: checked call by call

    encoded, problems = _serialization.dumps_calls(
        tasks.order_total.module_path, bound, OrjsonSerializer(), signature
    )

    assert problems == []
    assert [type(data) for data in encoded] == [str, str]
    assert [orjson.loads(data) for data in encoded] == [call.payload for call in bound]

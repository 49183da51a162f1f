"""Values survive the JSON round trip exactly: same value, same type, both serializers."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Generic, NotRequired, TypeVar
from uuid import UUID

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, computed_field
from typing_extensions import TypedDict

from django_tasks import InvalidTaskError, TaskResultStatus, task
from django_tasks._signatures import TaskSignature
from tests import tasks
from tests.conftest import IMMEDIATE, tasks_setting

SERIALIZERS = [
    pytest.param("django_tasks.serializers.OrjsonSerializer", id="orjson"),
    pytest.param("django_tasks.serializers.JsonSerializer", id="json"),
]

CUSTOMER = tasks.Customer(
    name="Ada",
    joined=datetime(2026, 11, 24, 10, 0, tzinfo=timezone(timedelta(hours=2))),
    address=tasks.Address(street="Main", number=7),
    tags=frozenset({"vip", "new"}),
)

EVERYTHING = {
    "when": datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC),
    "day": date(2026, 2, 28),
    "at": time(23, 59, 58, 999),
    "span": timedelta(days=-1, seconds=5, microseconds=7),
    "amount": Decimal("12.50"),
    "key": UUID("12345678-1234-5678-1234-567812345678"),
    "colour": tasks.Colour.GREEN,
    "size": tasks.Size.LARGE,
    "pair": (1, "one"),
    "unique": {3, 1, 2},
    "frozen": frozenset({"a"}),
    "by_id": {1: "one", -2: "minus two"},
    "point": {"x": 1, "y": 2},
    "item": tasks.LineItem(sku="sku-1", price=Decimal("0.10"), quantity=3),
    "customer": CUSTOMER,
}


def assert_same(actual: Any, expected: Any) -> None:
    """Assert equal values of the same types, all the way down."""
    assert actual == expected
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, dict):
        for key in expected:
            assert_same(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        for got, want in zip(actual, expected, strict=True):
            assert_same(got, want)
    elif dataclasses.is_dataclass(expected):
        assert_same(dataclasses.asdict(actual), dataclasses.asdict(expected))


@pytest.fixture(params=SERIALIZERS)
def serializer(request, settings):
    settings.TASKS = tasks_setting(IMMEDIATE, OPTIONS={"SERIALIZER": request.param})
    return request.param


def test_roundtrip__every_supported_type(serializer):
    result = tasks.everything.enqueue(**EVERYTHING)

    assert result.status == TaskResultStatus.SUCCESSFUL, result.traceback
    assert_same(result.return_value, {**EVERYTHING, "maybe": None})
    assert_same(result.kwargs, EVERYTHING)


def test_roundtrip__naive_datetime_stays_naive(serializer):
    naive = datetime(2026, 11, 24, 10, 0)

    result = tasks.everything.enqueue(**{**EVERYTHING, "when": naive})

    assert result.return_value["when"] == naive
    assert result.return_value["when"].tzinfo is None


def test_roundtrip__returns_a_pydantic_model(serializer):
    joined = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    result = tasks.make_customer.enqueue("Ada", joined)

    assert_same(
        result.return_value,
        tasks.Customer(name="Ada", joined=joined, address=tasks.Address(street="Main", number=1)),
    )


def test_roundtrip__positional_stay_positional(serializer):
    result = tasks.kinds.enqueue(1, "b", 2.5, 3.0, d=4, day=date(2026, 1, 1))

    assert result.args == [1, "b", 2.5, 3.0]
    assert result.kwargs == {"d": 4, "day": date(2026, 1, 1)}
    assert result.return_value == {
        "a": 1,
        "b": "b",
        "rest": [2.5, 3.0],
        "c": False,
        "d": 4,
        "extra": ["day"],
    }


def test_roundtrip__none_is_not_a_missing_default(serializer):
    passed_none = tasks.kinds.enqueue(1, "b", d=None)
    left_out = tasks.kinds.enqueue(1, "b")

    assert passed_none.kwargs == {"d": None}
    assert left_out.kwargs == {}


def test_roundtrip__list_of_dataclasses_and_a_model(serializer):
    items = [tasks.LineItem(sku="a", price=Decimal("1.25"), quantity=2)]

    result = tasks.order_total.enqueue(items, CUSTOMER)

    assert_same(result.return_value, Decimal("2.50"))
    assert_same(result.args, [items, CUSTOMER])


def test_roundtrip__forward_reference_resolved_on_first_use(serializer):
    later = tasks.Later(at=datetime(2026, 1, 1, tzinfo=UTC))

    assert_same(tasks.deferred_annotation.enqueue(later).return_value, later)


def test_roundtrip__a_type_imported_at_the_end_of_the_module_resolves(serializer):
    from tests.later import DefinedLater

    assert tasks.imported_at_the_end.enqueue(DefinedLater(label="x")).return_value == "x"


# What hypothesis draws: (annotation-specific strategy, task taking exactly that type).
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
aware = st.datetimes(timezones=st.just(UTC))
VALUES = {
    "when": aware | st.datetimes(),
    "day": st.dates(),
    "at": st.times(),
    "span": st.timedeltas(),
    "amount": st.decimals(allow_nan=False, allow_infinity=False, places=4),
    "key": st.uuids(),
    "colour": st.sampled_from(tasks.Colour),
    "size": st.sampled_from(tasks.Size),
    "pair": st.tuples(ints, text),
    "unique": st.sets(ints, max_size=5),
    "frozen": st.frozensets(text, max_size=5),
    "by_id": st.dictionaries(ints, text, max_size=5),
    "point": st.fixed_dictionaries({"x": ints, "y": ints}),
    "item": st.builds(
        tasks.LineItem,
        sku=text,
        price=st.decimals(allow_nan=False, allow_infinity=False, places=2),
        quantity=ints,
    ),
    "customer": st.builds(
        tasks.Customer,
        name=text,
        joined=aware,
        address=st.builds(tasks.Address, street=text, number=ints),
        tags=st.frozensets(text, max_size=3),
    ),
    "maybe": st.none() | ints,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments=st.fixed_dictionaries(VALUES))
def test_roundtrip__property_every_value_comes_back_as_sent(arguments):
    try:
        result = tasks.everything.enqueue(**arguments)
    except InvalidTaskError:
        return
    assert result.status == TaskResultStatus.SUCCESSFUL, result.traceback
    assert_same(result.kwargs, arguments)
    assert_same(result.return_value, arguments)


JSON = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=True, allow_infinity=True) | text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(text | ints, children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(value=JSON)
def test_roundtrip__property_untyped_values_come_back_or_are_refused(value):
    try:
        result = tasks.echo.enqueue(value)
    except InvalidTaskError:
        return
    assert_same(result.return_value, value)


# Fields that pydantic writes or reads under another name, or computes.


class Sender(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: str = Field(alias="from")
    reply_to: str = Field(validation_alias="replyTo", serialization_alias="reply-to")
    count: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return f"{self.from_} x{self.count}"


@pydantic.dataclasses.dataclass
class Tagged:
    size: int = Field(alias="Size")


class Keyed(TypedDict):
    size: Annotated[int, Field(alias="Size")]


@task
def renamed_fields(sender: Sender, tagged: Tagged, keyed: Keyed) -> tuple[Sender, Tagged, Keyed]:
    return sender, tagged, keyed


class SerializedByAlias(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    reply_to: str = Field(validation_alias="replyTo", serialization_alias="reply-to")


@task
def by_alias(value: SerializedByAlias) -> SerializedByAlias:
    return value


def test_roundtrip__a_model_that_serializes_by_alias_comes_back_as_sent(serializer):
    value = SerializedByAlias.model_validate({"replyTo": "bob"})

    result = by_alias.enqueue(value)

    assert result.status == TaskResultStatus.SUCCESSFUL, result.traceback
    assert_same(result.return_value, value)


def test_roundtrip__aliased_and_computed_fields_come_back_as_sent(serializer):
    sender = Sender.model_validate({"from": "ada", "replyTo": "bob", "count": 2})
    tagged = Tagged(Size=3)  # type: ignore[call-arg]

    result = renamed_fields.enqueue(sender, tagged, {"Size": 4})  # type: ignore[typeddict-unknown-key]

    assert result.status == TaskResultStatus.SUCCESSFUL, result.traceback
    assert_same(result.return_value, (sender, tagged, {"size": 4}))
    assert_same(result.args, [sender, tagged, {"size": 4}])
    assert result.return_value[0].label == "ada x2"


@pytest.mark.parametrize(
    "field",
    [
        pytest.param(Field(alias="other"), id="alias"),
        pytest.param(Field(validation_alias="other"), id="validation_alias"),
        pytest.param(Field(exclude=True), id="exclude"),
        pytest.param(Field(exclude_if=lambda value: value == 0), id="exclude_if"),
    ],
)
def test_signature__a_parameter_field_that_renames_or_drops_it_is_refused(field):
    def renamed(a: int, b: int) -> None: ...

    renamed.__annotations__["a"] = Annotated[int, field]  # not a string: `field` is local
    with pytest.raises(InvalidTaskError) as error:
        TaskSignature(renamed, takes_context=False, task_path="shop.tasks.renamed")

    assert str(error.value) == (
        "Parameter 'a' of task 'shop.tasks.renamed' has a pydantic Field with an alias, "
        "exclude=True or exclude_if; a call passes it by its own name and its value must be "
        "stored, so remove the alias or the exclude."
    )


def test_signature__a_parameter_field_that_only_constrains_it_is_kept():
    def constrained(a: Annotated[int, Field(ge=0)]) -> None: ...

    signature = TaskSignature(constrained, takes_context=False, task_path="shop.tasks.constrained")

    assert signature.build().row_types is not None  # its calls validate as tuples in bulk


T = TypeVar("T")


class Secret(BaseModel):
    name: str
    token: str = Field(default="", exclude=True)


@dataclasses.dataclass
class Hidden:
    size: Annotated[int, Field(exclude=True)]


@pydantic.dataclasses.dataclass
class HiddenDefault:
    size: int = Field(default=0, exclude=True)


class HiddenKey(TypedDict):
    size: Annotated[int, Field(exclude=True)]


class Outer(BaseModel):
    inner: list[Secret]


@dataclasses.dataclass
class Box(Generic[T]):
    item: T
    hidden: Annotated[int, Field(exclude=True)] = 0


@dataclasses.dataclass
class Pair(Generic[T]):
    first: T
    second: T


class MaybeHidden(TypedDict):
    shown: int
    hidden: NotRequired[Annotated[int, Field(exclude=True)]]


class Swapped(BaseModel):
    a: int = Field(alias="b")
    b: int = Field(alias="a")


class HoldsLater(BaseModel):
    later: DefinedAfter


class DefinedAfter(BaseModel):
    token: str = Field(default="", exclude=True)


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        pytest.param(
            Secret,
            "parameter 'value': field 'Secret.token' has exclude=True or exclude_if",
            id="model",
        ),
        pytest.param(
            Outer | None,
            "parameter 'value': field 'Secret.token' has exclude=True or exclude_if",
            id="nested-model",
        ),
        pytest.param(
            Hidden,
            "parameter 'value': field 'Hidden.size' has exclude=True or exclude_if",
            id="dataclass",
        ),
        pytest.param(
            HiddenDefault,
            "parameter 'value': field 'HiddenDefault.size' has exclude=True or exclude_if",
            id="pydantic-dataclass",
        ),
        pytest.param(
            dict[str, HiddenKey],
            "parameter 'value': field 'HiddenKey.size' has exclude=True or exclude_if",
            id="typeddict",
        ),
        pytest.param(
            Box[int],
            "parameter 'value': field 'Box.hidden' has exclude=True or exclude_if",
            id="generic-dataclass",
        ),
        pytest.param(
            MaybeHidden,
            "parameter 'value': field 'MaybeHidden.hidden' has exclude=True or exclude_if",
            id="typeddict-not-required",
        ),
        pytest.param(
            HoldsLater,
            "parameter 'value': field 'DefinedAfter.token' has exclude=True or exclude_if",
            id="model-defined-later",
        ),
        pytest.param(
            Swapped,
            "parameter 'value': field 'Swapped.a' has the alias 'b', the name of another of "
            "its fields, so their values could trade places",
            id="aliases-swap",
        ),
        pytest.param(
            dict[tuple[int, int], int],
            "parameter 'value': dict keys of type tuple are written to JSON as text",
            id="tuple-keys",
        ),
        pytest.param(
            OrderedDict[tuple[int, int], int],
            "parameter 'value': dict keys of type tuple are written to JSON as text",
            id="ordered-dict-tuple-keys",
        ),
        pytest.param(
            list[dict[frozenset[str] | None, int]],
            "parameter 'value': dict keys of type frozenset are written to JSON as text",
            id="frozenset-keys",
        ),
    ],
)
def test_signature__a_type_json_cannot_bring_back_whole_is_refused(annotation, problem):
    def takes(value: Any) -> None: ...

    takes.__annotations__["value"] = annotation

    with pytest.raises(InvalidTaskError) as error:
        TaskSignature(takes, takes_context=False, task_path="shop.tasks.takes")

    assert str(error.value).startswith(
        "Task 'shop.tasks.takes' has a type whose values JSON cannot bring back whole, in "
        f"{problem}"
    )


def test_signature__a_return_json_cannot_bring_back_whole_is_refused():
    def gives() -> dict[tuple[int, int], int]: ...

    with pytest.raises(InvalidTaskError, match="in the return annotation: dict keys of type"):
        TaskSignature(gives, takes_context=False, task_path="shop.tasks.gives")


@pytest.mark.parametrize(
    "annotation",
    [
        dict[int, str],
        dict[date, int],
        dict[tasks.Colour, int],
        dict[Decimal | None, int],
        dict[UUID, list[tasks.LineItem]],
        tasks.Customer,
        Annotated[Sender, Field(description="kept")],
        Pair[tasks.Address] | None,
        dict[Annotated[str, Field(min_length=1)], int],
        OrderedDict[str, list[int]],
    ],
)
def test_signature__types_json_brings_back_whole_are_kept(annotation):
    def takes(value: Any) -> None: ...

    takes.__annotations__["value"] = annotation

    assert TaskSignature(takes, takes_context=False, task_path="shop.tasks.takes").build()

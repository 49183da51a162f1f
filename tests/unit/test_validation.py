"""Validation at enqueue: strict, every bad argument named, nothing stored on failure."""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, NotRequired

import pytest

from django_tasks import InvalidTaskError, _fidelity, _serialization, serializers, task
from tests import tasks
from tests.conftest import IMMEDIATE, tasks_setting


def errors_of(call: Any) -> InvalidTaskError:
    with pytest.raises(InvalidTaskError) as caught:
        call()
    return caught.value


def test_enqueue__names_every_bad_argument(immediate):
    error = errors_of(lambda: tasks.add.enqueue("5", b=2.5))

    assert str(error) == (
        "Invalid arguments for task 'tests.tasks.add':\n"
        "  - 'a': Input should be a valid integer (got str: '5')\n"
        "  - 'b': Input should be a valid integer (got float: 2.5)"
    )
    assert error.task_path == "tests.tasks.add"
    assert [(e["loc"], e["type"], e["input"]) for e in error.errors] == [
        (("a",), "int_type", "5"),
        (("b",), "int_type", 2.5),
    ]


def test_enqueue__reports_missing_arguments(immediate):
    error = errors_of(lambda: tasks.add.enqueue(1))

    assert str(error) == (
        "Invalid arguments for task 'tests.tasks.add':\n  - 'b': missing required argument"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        pytest.param((1, 2, 3), {}, "takes 2 positional arguments but 3 were given", id="too-many"),
        pytest.param((1,), {"a": 1}, "got multiple values for argument 'a'", id="twice"),
        pytest.param((1, 2), {"c": 3}, "got an unexpected keyword argument 'c'", id="unknown"),
    ],
)
def test_enqueue__rejects_calls_python_would_reject(immediate, args, kwargs, message):
    error = errors_of(lambda: tasks.add.enqueue(*args, **kwargs))

    assert str(error) == f"Task 'tests.tasks.add' {message}."


def test_enqueue__rejects_positional_only_passed_by_keyword(immediate):
    error = errors_of(lambda: tasks.positional_only.enqueue(a=1))

    assert str(error) == (
        "Task 'tests.tasks.positional_only' got positional-only argument 'a' passed as keyword."
    )


def test_enqueue__positional_only_name_by_keyword_goes_to_var_keyword_as_in_python(immediate):
    error = errors_of(lambda: tasks.kinds.enqueue(a=1, b="x"))

    assert str(error) == (
        "Invalid arguments for task 'tests.tasks.kinds':\n"
        "  - 'a': missing required argument\n"
        "  - 'extra.a': Input should be a valid date (got int: 1)"
    )


@pytest.mark.parametrize(
    ("call", "location", "error_type"),
    [
        pytest.param(lambda: tasks.add.enqueue(True, 1), "a", "int_type", id="bool-is-not-int"),
        pytest.param(
            lambda: tasks.constrained.enqueue(11, tasks.Colour.RED),
            "count",
            "less_than_equal",
            id="field-constraint",
        ),
        pytest.param(
            lambda: tasks.constrained.enqueue(1, "red"),
            "colour",
            "is_instance_of",
            id="enum-value-is-not-member",
        ),
        pytest.param(
            lambda: tasks.constrained.enqueue(1, tasks.Colour.RED, size="xl"),
            "size",
            "literal_error",
            id="literal",
        ),
        pytest.param(
            lambda: tasks.kinds.enqueue(1, "b", 1.5, "x"),
            "rest[1]",
            "float_type",
            id="var-positional",
        ),
        pytest.param(
            lambda: tasks.kinds.enqueue(1, "b", extra="2026-01-01"),
            "extra.extra",
            "date_type",
            id="var-keyword",
        ),
        pytest.param(
            lambda: tasks.make_customer.enqueue("n", "2026-01-01T00:00:00Z"),
            "joined",
            "datetime_type",
            id="datetime-string-is-strict-error",
        ),
        pytest.param(
            lambda: tasks.order_total.enqueue(
                [{"sku": "a", "price": Decimal(1)}],
                tasks.Customer(
                    name="n", joined=datetime.now(UTC), address=tasks.Address(street="s", number=1)
                ),
            ),
            "items[0]",
            "dataclass_exact_type",
            id="dict-is-not-dataclass",
        ),
    ],
)
def test_enqueue__is_strict(immediate, call, location, error_type):
    error = errors_of(call)

    assert next((".".join(map(str, e["loc"])), e["type"]) for e in error.errors) == (
        location.replace("[", ".").replace("]", ""),
        error_type,
    )
    assert f"'{location}'" in str(error)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(math.nan, "NaN and infinities cannot be stored as JSON", id="nan"),
        pytest.param(math.inf, "NaN and infinities cannot be stored as JSON", id="inf"),
        pytest.param({1: "x"}, "dict keys must be str", id="int-keys-untyped"),
        pytest.param(date(2026, 1, 1), "date is not JSON-compatible", id="date-untyped"),
        pytest.param([object()], "object is not JSON-compatible", id="nested-object"),
    ],
)
def test_enqueue__any_accepts_only_json(immediate, value, problem):
    error = errors_of(lambda: tasks.echo.enqueue(value))

    assert problem in str(error)


def test_enqueue__untyped_tuples_become_lists_as_in_django(immediate):
    result = tasks.untyped.enqueue((1, 2), b={"k": (3,)})

    assert result.return_value == {"a": [1, 2], "b": {"k": [3]}}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("a\x00b", "'value': the NUL character \\u0000 cannot be stored", id="nul"),
        pytest.param({"k\x00": 1}, "the NUL character", id="nul-key"),
        pytest.param(2**64, "'value': OrjsonSerializer cannot encode it", id="int-past-64-bits"),
        pytest.param(
            {"\ud800": 1}, "'value': the key '\\ud800' is not valid Unicode", id="surrogate-key"
        ),
        pytest.param(
            [{"k": {"\ud800": 1}}],
            "'value[0].k': the key '\\ud800' is not valid Unicode",
            id="surrogate-key-nested",
        ),
    ],
)
def test_enqueue__rejects_what_json_would_change(immediate, value, problem):
    error = errors_of(lambda: tasks.echo.enqueue(value))

    assert problem in str(error)


@pytest.mark.parametrize(
    ("annotation", "scanned"),
    [
        (int, False),
        (str | None, False),
        (list[str], False),
        (Sequence[int], False),
        (tuple[int, ...], False),
        (NotRequired[int], False),  # a parameter with a default
        (datetime, True),
        (NotRequired[datetime], True),
        (tuple[datetime, ...], True),
        (set[time], True),
        (dict[str, int], True),  # its keys
        (list[dict[str, int]], True),
        (list[Any], True),  # Any may hold a dict
        (typing.List, True),  # noqa: UP006 - bare: may hold anything
        (typing.Sequence, True),
        (list, True),
        (Any, True),
        (tasks.Address, True),
    ],
)
def test_needs_scan__only_what_may_hold_a_datetime_time_or_dict_key(annotation, scanned):
    """Values JSON would change unnoticed are looked for only where they can be."""
    assert _fidelity.needs_scan(annotation) is scanned


@task
def two_texts(first: str, /, second: str, *more: str) -> None: ...


def test_enqueue__names_every_argument_json_would_change(immediate):
    error = errors_of(lambda: two_texts.enqueue("a\x00", "b", "c", "d\x00"))

    assert str(error) == (
        "Invalid arguments for task 'tests.unit.test_validation.two_texts':\n"
        "  - 'first': the NUL character \\u0000 cannot be stored\n"
        "  - 'more[1]': the NUL character \\u0000 cannot be stored; "
        "send values JSON can hold unchanged."
    )
    assert [(e["type"], e["loc"]) for e in error.errors] == [
        ("json", ("first",)),
        ("json", ("more", 1)),
    ]


def test_enqueue__backslash_u0000_text_is_not_a_nul(immediate):
    assert tasks.echo.enqueue("\\u0000").return_value == "\\u0000"


def test_enqueue__nan_in_a_float_parameter_is_rejected(immediate):
    error = errors_of(lambda: tasks.kinds.enqueue(1, "b", math.nan))

    assert "'rest[0]': Input should be a finite number" in str(error)


def test_enqueue__nan_inside_a_pydantic_model_is_rejected(immediate):
    # The model's own config allows NaN, which orjson would silently write as null.
    error = errors_of(lambda: tasks.measure.enqueue(tasks.Measurement(value=math.nan)))

    assert str(error) == (
        "Invalid arguments for task 'tests.tasks.measure':\n"
        "  - 'measurement.value': NaN and infinities cannot be stored; "
        "send a value JSON can hold unchanged."
    )


def test_enqueue__json_serializer_accepts_big_ints(settings):
    settings.TASKS = tasks_setting(
        IMMEDIATE, OPTIONS={"SERIALIZER": "django_tasks.serializers.JsonSerializer"}
    )

    assert tasks.echo.enqueue(2**70).return_value == 2**70


def test_serializers__refuse_nan():
    with pytest.raises(ValueError, match="Out of range float"):
        serializers.JsonSerializer().dumps(math.nan)
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        serializers.JsonSerializer().loads("[NaN]")


@task
def raw(data: bytes) -> bytes:
    return data


NOT_UTF8 = (
    "bytes that are not UTF-8 text, which JSON holds bytes as; send other bytes as text, "
    "base64-encoded for instance"
)


def test_enqueue__bytes_that_are_not_utf8_are_refused_with_what_to_send(immediate):
    assert raw.enqueue(b"caf\xc3\xa9").return_value == b"caf\xc3\xa9"  # UTF-8: kept

    single = errors_of(lambda: raw.enqueue(b"\xff"))
    bulk = errors_of(lambda: raw.enqueue_many([raw.arguments(b"ok"), raw.arguments(b"\xff")]))

    assert str(single) == (
        "Invalid arguments for task 'tests.unit.test_validation.raw': they cannot be written "
        f"as JSON ({NOT_UTF8}); send values JSON can hold unchanged."
    )
    assert str(bulk).splitlines()[:2] == [
        "1 of the calls to task 'tests.unit.test_validation.raw' are invalid, so none was "
        "enqueued:",
        f"call 1: {single}",
    ]


def test_result__bytes_that_are_not_utf8_fail_the_task_saying_why():
    with pytest.raises(InvalidTaskError) as error:
        raw.signature.dump_result(b"\xff")

    assert str(error.value) == (
        "Task 'tests.unit.test_validation.raw' returned a value that cannot be written as "
        f"JSON: {NOT_UTF8}."
    )


def test_result__a_return_value_json_would_change_names_it():
    with pytest.raises(InvalidTaskError) as error:
        _serialization.dumps_result(tasks.echo.signature, "a\x00", serializers.OrjsonSerializer())

    assert str(error.value) == (
        "Task 'tests.tasks.echo' returned a value JSON cannot hold unchanged: "
        "'return value': the NUL character \\u0000 cannot be stored"
    )

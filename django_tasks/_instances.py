"""Django model instances as task arguments and results: they travel as primary keys.

A parameter annotated with a model class (`user: User`, `User | None`, `list[User]`)
takes saved instances at enqueue, is stored as the primary key(s), and is fetched
again when the task runs (one query for a list). A row deleted in between fails the
task with an error naming the model and key, also when the annotation allows None:
None is for a caller who passes None, not for a row that went missing.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from pydantic import PlainSerializer, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

LOADING = "django_tasks.loading"
"""Set in the validation context when stored JSON is decoded, as on a worker."""


def _loading(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get(LOADING))


def _pk_json(instance: models.Model) -> Any:
    pk = instance.pk
    return pk if isinstance(pk, (int, str)) else str(pk)


def _label(model: type[models.Model]) -> str:
    return f"{model._meta.app_label}.{model.__name__}"


def _check_saved(model: type[models.Model], value: Any) -> models.Model:
    if not isinstance(value, model):
        raise PydanticCustomError(
            "model_instance", "Input should be a saved {model} instance", {"model": _label(model)}
        )
    if value.pk is None:
        raise PydanticCustomError(
            "model_unsaved",
            "Input is an unsaved {model} instance; save it first, so it can travel as its "
            "primary key",
            {"model": _label(model)},
        )
    return value


def _fetch(model: type[models.Model], pk: Any) -> models.Model:
    if pk is None:
        raise PydanticCustomError("model_pk", "None is not a primary key")
    try:
        return model._default_manager.get(pk=pk)
    except (ObjectDoesNotExist, ValueError, TypeError, ValidationError):
        raise PydanticCustomError(
            "model_missing",
            _literal(f"{_label(model)} with primary key {pk!r} does not exist")
            + " (deleted before the task ran?)",
        ) from None


def _instance(model: type[models.Model]) -> Any:
    def validate(value: Any, info: ValidationInfo) -> models.Model:
        return _fetch(model, value) if _loading(info) else _check_saved(model, value)

    return Annotated[Any, PlainValidator(validate), PlainSerializer(_pk_json)]


def _instance_list(model: type[models.Model]) -> Any:
    def validate(value: Any, info: ValidationInfo) -> list[models.Model]:
        if not isinstance(value, list):
            raise PydanticCustomError("list_type", "Input should be a list")
        if not _loading(info):
            return [_check_saved(model, item) for item in value]
        keys = [model._meta.pk.to_python(pk) for pk in value]
        found = model._default_manager.in_bulk(keys)
        missing = [pk for pk in keys if pk not in found]
        if missing:
            raise PydanticCustomError(
                "model_missing",
                _literal(f"{_label(model)} with primary keys {missing!r} do not exist")
                + " (deleted before the task ran?)",
            )
        return [found[pk] for pk in keys]

    return Annotated[
        Any, PlainValidator(validate), PlainSerializer(lambda items: [_pk_json(i) for i in items])
    ]


def _literal(text: str) -> str:
    """Escape `text` for a pydantic message template, which formats {placeholders}."""
    return text.replace("{", "{{").replace("}", "}}")


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, models.Model)


def replace_models(annotation: Any) -> Any:
    """Return `annotation` with model classes, and lists of them, made to travel as keys."""
    if _is_model(annotation):
        return _instance(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and len(args) == 1 and _is_model(args[0]):
        return _instance_list(args[0])
    if origin in (Union, types.UnionType):
        return Union[tuple(replace_models(arg) for arg in args)]  # noqa: UP007
    return annotation

"""Reading a record's fields back from JSON that a person may have edited or cut short.

Each value is checked against the field's annotation. A wrong-typed value, or a missing value
of a field without a default, becomes the field's fallback (its default, else None where the
type allows it, NaN for a float, an empty list) and one note that reports show; a field with a
default may be absent (files from older versions lack it). Only a record that lacks a value it
cannot do without (an epoch's number) is dropped, again with a note.
"""

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, Union

R = TypeVar("R")

_NO_FALLBACK = object()


class _WrongTypeError(Exception):
    """A value does not fit its annotation; the message says what was expected."""


def read_record(cls: type[R], data: object, source: str, notes: list[str]) -> R | None:
    """`data` (a decoded JSON object) as a `cls` record, or None when it cannot be one."""
    if not isinstance(data, dict):
        notes.append(f"{source} does not hold a JSON object; ignored")
        return None
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    missing: list[str] = []
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        annotation = hints[spec.name]
        if spec.name in data:
            try:
                values[spec.name] = _check(data[spec.name], annotation, f"{source}: {spec.name}")
                continue
            except _WrongTypeError as error:
                problem = f"{error}; shown as missing"
        else:
            problem = ""
            if not _has_default(spec):  # fields with a default may be absent (older files)
                missing.append(spec.name)
        fallback = _fallback(spec, annotation)
        if fallback is _NO_FALLBACK:
            notes.append(f"{source}: {problem or f'no {spec.name!r}'}; skipped")
            return None
        if problem:
            notes.append(problem)
        values[spec.name] = fallback
    if missing:
        notes.append(f"{source} lacks {', '.join(missing)}")
    return cls(**values)


def record_dict(record: object) -> dict[str, Any]:
    """A record as the JSON object its file holds (nested records become objects too)."""
    return dataclasses.asdict(record)  # type: ignore[call-overload, no-any-return]


def _has_default(spec: "dataclasses.Field[Any]") -> bool:
    return (
        spec.default is not dataclasses.MISSING or spec.default_factory is not dataclasses.MISSING
    )


def _fallback(spec: "dataclasses.Field[Any]", annotation: Any) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    if _is_optional(annotation):
        return None
    if annotation is float:
        return math.nan
    if typing.get_origin(annotation) is list:
        return []
    return _NO_FALLBACK


def _is_optional(annotation: Any) -> bool:
    return _is_union(annotation) and type(None) in typing.get_args(annotation)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _check(value: Any, annotation: Any, where: str) -> Any:
    """`value` if it fits `annotation` (an int is a fine float), else raise _WrongTypeError."""
    if _is_union(annotation):
        for option in typing.get_args(annotation):
            try:
                return _check(value, option, where)
            except _WrongTypeError:
                continue
        raise _WrongTypeError(f"{where} is {_shown(value)}, not {_kind(annotation)}")
    if annotation is type(None):
        if value is None:
            return None
    elif annotation is Any:
        return value
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(annotation) is list:
        if isinstance(value, list):
            (item,) = typing.get_args(annotation)
            return [_check(entry, item, f"{where}[{i}]") for i, entry in enumerate(value)]
    elif typing.get_origin(annotation) is dict:
        if isinstance(value, dict):
            return value
    elif dataclasses.is_dataclass(annotation):
        inner: list[str] = []
        record = read_record(annotation, value, where, inner)  # type: ignore[arg-type]
        if record is not None and not inner:
            return record
    raise _WrongTypeError(f"{where} is {_shown(value)}, not {_kind(annotation)}")


def _kind(annotation: Any) -> str:
    if _is_union(annotation):
        return " or ".join(_kind(option) for option in typing.get_args(annotation))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if annotation in names:
        return names[annotation]
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) is list:
        return f"a list of {_kind(typing.get_args(annotation)[0])} values"
    if dataclasses.is_dataclass(annotation):
        return f"a {annotation.__name__} object"  # type: ignore[union-attr]
    return "an object"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

"""Ingest inputs: the Stream Ingest request body, and value converters for records and files.

Converters turn one input value into its wire encoding (what the online store holds) or raise
`ValueTypeError` with a message that says what was expected. "Text" converters read CSV cells
(nested values as JSON text); "native" converters read decoded JSON or Parquet values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load

from app.names import MAX_NAME_LENGTH, name_problem
from app.store import canonical_key_part
from app.types import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    FeatureType,
    ValueTypeError,
    coerce_value,
    encode_float,
    encode_value,
    format_timestamp,
    parse_timestamp,
    to_float32,
)

Converter = Callable[[Any], Any]

# ----------------------------------------------------------------------------- request body

# snake_case name -> camelCase name; both are accepted on both paths.
_SPELLINGS = {"workspace_name": "workspaceName", "dry_run": "dryRun", "records": "records"}


class RequestValidationError(ValueError):
    """A request body that is not a valid ingest request (answered with `requestError`)."""


class IngestRequestSchema(Schema):
    """`{"workspace_name", "dry_run", "records": {source: [{"record": {...}}, ...]}}`."""

    class Meta:
        unknown = EXCLUDE

    workspace_name = fields.String(required=True)
    dry_run = fields.Boolean(required=True, truthy={True}, falsy={False})
    # The entries are checked by `_records` (marshmallow's nested schemas cost ~0.1 ms a record).
    records = fields.Dict(keys=fields.String(), required=True)

    @pre_load
    def _one_spelling(self, data: Any, **_kwargs: Any) -> Any:
        """Fold camelCase names into snake_case; `null` counts as absent."""
        if not isinstance(data, dict):
            return data
        folded = {k: v for k, v in data.items() if k not in _SPELLINGS.values()}
        for snake, camel in _SPELLINGS.items():
            value = data.get(snake)
            if value is None:
                value = data.get(camel)
            if value is None:
                folded.pop(snake, None)
            else:
                folded[snake] = value
        return folded


@dataclass(frozen=True, slots=True)
class IngestRequest:
    workspace: str
    dry_run: bool
    records: dict[str, list[dict[str, Any]]]  # push source -> the records' column maps


_SCHEMA = IngestRequestSchema()


def parse_request(body: Any, *, camel_case: bool) -> IngestRequest:
    """Validate a decoded body; messages name fields as spelled for the path (`/v2`: camel)."""
    if not isinstance(body, dict):
        raise RequestValidationError("The request body must be a JSON object")
    try:
        data = _SCHEMA.load(body)
    except ValidationError as exc:
        raise RequestValidationError(
            _first_message(exc.normalized_messages(), camel_case)  # type: ignore[no-untyped-call]  # marshmallow leaves it unannotated
        ) from None
    workspace_field = "workspaceName" if camel_case else "workspace_name"
    for name, field in [(data["workspace_name"], workspace_field)] + [
        (source, f"records.{source[:MAX_NAME_LENGTH]}") for source in data["records"]
    ]:
        problem = name_problem(name)
        if problem is not None:
            raise RequestValidationError(f"Field `{field}` is invalid: the name {problem}")
    return IngestRequest(
        workspace=data["workspace_name"],
        dry_run=data["dry_run"],
        records={source: _records(source, entries) for source, entries in data["records"].items()},
    )


def _records(source: str, entries: Any) -> list[dict[str, Any]]:
    """`[{"record": {...}}, ...]` to the list of record objects."""
    where = f"Field `records` is invalid: records.{source}"
    if not isinstance(entries, list):
        raise RequestValidationError(f"{where}: not a valid list")
    records = []
    for index, entry in enumerate(entries):
        record = entry.get("record") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or len(entry) != 1 or record is None:
            raise RequestValidationError(
                f'{where}[{index}]: each entry must be {{"record": {{...}}}}'
            )
        if not isinstance(record, dict):
            raise RequestValidationError(f"{where}[{index}].record: not a valid mapping type")
        records.append(record)
    return records


def _first_message(messages: dict[str, Any], camel_case: bool) -> str:
    for snake, camel in _SPELLINGS.items():
        name = camel if camel_case else snake
        problem = messages.get(snake)
        if problem is None:
            continue
        if problem == ["Missing data for required field."]:
            return f"Required field `{name}` is missing in the request"
        if snake == "workspace_name":
            return f"Field `{name}` must be a string"
        if snake == "dry_run":
            return f"Field `{name}` must be a boolean"
        return f"Field `records` is invalid: {_flatten(problem, 'records')}"
    return "Invalid request: " + _flatten(messages, "")  # pragma: no cover


def _flatten(problem: Any, path: str) -> str:
    """The first leaf of marshmallow's nested messages, as `records.src[0].record: message`."""
    if isinstance(problem, dict):
        key, value = next(iter(problem.items()))
        if isinstance(key, int):
            return _flatten(value, f"{path}[{key}]")
        if key == "value":  # marshmallow's slot for a Dict value's errors
            return _flatten(value, path)
        if key == "key":  # pragma: no cover (JSON keys are always strings)
            return _flatten(value, path)
        return _flatten(value, f"{path}.{key}" if path else str(key))
    if isinstance(problem, list):
        text = "; ".join(str(p) for p in problem)
        if text == "Unknown field.":
            text = 'unknown field; each entry must be {"record": {...}}'
        if text == "Missing data for required field.":
            text = 'missing; each entry must be {"record": {...}}'
        if text.startswith("Not a valid"):
            text = text.lower().rstrip(".")
        return f"{path}: {text}"
    return f"{path}: {problem}"  # pragma: no cover


# ----------------------------------------------------------------------------- value converters


def native_converter(feature_type: FeatureType) -> Converter:
    """A converter for decoded JSON (or Parquet) values; None stays None."""
    kind = feature_type.kind
    if kind == "String":

        def string(value: Any) -> Any:
            if type(value) is str and "\x00" not in value:
                return value
            return coerce_value(feature_type, value)

        return string
    if kind in ("Int64", "Int32"):
        low, high = (INT64_MIN, INT64_MAX) if kind == "Int64" else (INT32_MIN, INT32_MAX)

        def integer(value: Any) -> Any:
            if type(value) is int and low <= value <= high:
                return str(value)
            coerced = coerce_value(feature_type, value)
            return None if coerced is None else str(coerced)

        return integer
    if kind == "Float64":

        def number(value: Any) -> Any:
            if type(value) is float:
                return encode_float(value)
            coerced = coerce_value(feature_type, value)
            return None if coerced is None else encode_float(coerced)

        return number
    if kind == "Float32":

        def number32(value: Any) -> Any:
            coerced = coerce_value(feature_type, value)  # rounded to float32
            return None if coerced is None else encode_float(coerced)

        return number32
    if kind == "Timestamp":

        def timestamp(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, datetime):
                return format_timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))
            return format_timestamp(coerce_value(feature_type, value))

        return timestamp

    def general(value: Any) -> Any:
        return encode_value(feature_type, coerce_value(feature_type, value))

    return general


_DIGITS = re.compile(r"[+-]?[0-9]{1,19}")
_TWO_63 = float(2**63)
_TRUE = frozenset({"true", "True", "TRUE", "1", "t", "T"})
_FALSE = frozenset({"false", "False", "FALSE", "0", "f", "F"})


def text_converter(feature_type: FeatureType) -> Converter:
    """A converter for a non-empty CSV cell: scalars as text, nested values as JSON text."""
    kind = feature_type.kind
    if kind == "String":

        def string(value: str) -> Any:
            if "\x00" in value:
                raise ValueTypeError("strings may not contain NUL (\\u0000) characters")
            return value

        return string
    if kind in ("Int64", "Int32"):
        low, high = (INT64_MIN, INT64_MAX) if kind == "Int64" else (INT32_MIN, INT32_MAX)
        digits = _DIGITS.fullmatch

        def integer(value: str) -> Any:
            if digits(value):
                number = int(value)
                if low <= number <= high:
                    return str(number)
            return str(coerce_value(feature_type, value))  # raises with the reason

        return integer
    if kind in ("Float64", "Float32"):
        single = kind == "Float32"

        def number(value: str) -> Any:
            try:
                parsed = float(value)
            except ValueError:
                raise ValueTypeError(f"expected a number, got {value!r}") from None
            if single:
                parsed = to_float32(parsed)
            if parsed.is_integer() and -_TWO_63 < parsed < _TWO_63:
                return int(parsed)
            return encode_float(parsed)  # fractions, NaN and infinities

        return number
    if kind == "Bool":

        def boolean(value: str) -> Any:
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
            raise ValueTypeError(f"expected true or false, got {value!r}")

        return boolean
    if kind == "Timestamp":

        def timestamp(value: str) -> Any:
            return format_timestamp(parse_timestamp(value))

        return timestamp

    native = native_converter(feature_type)

    def nested(value: str) -> Any:
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueTypeError(
                f"expected JSON text for {feature_type.spelling}, got {_clip(value)}"
            ) from None
        return native(decoded)

    return nested


def key_converter(key_type: str, *, text: bool) -> Converter:
    """A join-key value to its canonical stored form; null or empty is an error."""

    def convert(value: Any) -> str:
        if value is None or value == "":
            raise ValueTypeError("a join key may not be null or empty")
        if key_type == "Int64":
            return canonical_key_part(key_type, coerce_value(_INT64, value))
        if text:
            if "\x00" in value:
                raise ValueTypeError("strings may not contain NUL (\\u0000) characters")
            return value  # type: ignore[no-any-return]  # a str: text converters get CSV cells
        return canonical_key_part(key_type, coerce_value(_STRING, value))

    return convert


def event_time(value: Any) -> datetime:
    """The event timestamp of a row or record; null is an error."""
    if value is None or value == "":
        raise ValueTypeError("the event timestamp may not be null or empty")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueTypeError(f"expected an ISO 8601 timestamp string, got {value!r}")
    return parse_timestamp(value)


_INT64 = FeatureType("Int64")
_STRING = FeatureType("String")


def _clip(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def check_columns(
    present: Mapping[str, Any] | list[str], expected: list[str], *, allow_missing: set[str]
) -> str | None:
    """A message for unknown or missing columns, or None when `present` fits `expected`."""
    known = set(expected)
    unknown = [c for c in present if c not in known]
    missing = [c for c in expected if c not in present and c not in allow_missing]
    problems = []
    if missing:
        problems.append("missing column(s) " + ", ".join(f"`{c}`" for c in missing))
    if unknown:
        problems.append("unknown column(s) " + ", ".join(f"`{c}`" for c in unknown))
    if not problems:
        return None
    return "; ".join(problems) + "; expected " + ", ".join(f"`{c}`" for c in expected)

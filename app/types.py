"""Feature types in the Tecton SDK's spelling, their wire `dataType`, and value encoding.

Spellings: `String`, `Int32`, `Int64`, `Float32`, `Float64`, `Bool`, `Timestamp`, `Array(T)`,
`Map(String, T)`, `Struct(name1 T1, name2 T2, ...)`, nesting freely. Int32 is served as int64.

Wire encoding follows Tecton's protobuf JSON: int64 as decimal strings, floats as numbers (whole
ones without a fraction; NaN/Infinity as strings), timestamps as RFC 3339 UTC with `Z`, structs
as positional arrays, maps as objects, missing values as null. Float32 values are rounded to
float32 precision when they are written, as Tecton stores them (0.1 is served as the float32
nearest to it, 0.10000000149011612).
"""

from __future__ import annotations

import functools
import math
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SCALARS = ("String", "Int32", "Int64", "Float32", "Float64", "Bool", "Timestamp")
JOIN_KEY_TYPES = ("String", "Int64")
_WIRE_SCALAR = {
    "String": "string",
    "Int32": "int64",
    "Int64": "int64",
    "Float32": "float32",
    "Float64": "float64",
    "Bool": "boolean",
    "Timestamp": "timestamp",
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TypeSyntaxError(ValueError):
    """A type spelling that is not one of Tecton's."""


@dataclass(frozen=True, slots=True)
class FeatureType:
    """A parsed type: `kind` is a scalar name, or "Array", "Map" or "Struct"."""

    kind: str
    element: FeatureType | None = None  # Array
    value: FeatureType | None = None  # Map (keys are always String)
    fields: tuple[tuple[str, FeatureType], ...] = ()  # Struct

    @property
    def spelling(self) -> str:
        if self.kind == "Array":
            return f"Array({self.element.spelling})"  # type: ignore[union-attr]  # set for this kind
        if self.kind == "Map":
            return f"Map(String, {self.value.spelling})"  # type: ignore[union-attr]  # set for this kind
        if self.kind == "Struct":
            return "Struct(" + ", ".join(f"{n} {t.spelling}" for n, t in self.fields) + ")"
        return self.kind

    def data_type(self) -> dict[str, Any]:
        """The wire `dataType` object (Tecton's FeatureServerComplexDataType)."""
        if self.kind == "Array":
            return {"type": "array", "elementType": self.element.data_type()}  # type: ignore[union-attr]  # set for this kind
        if self.kind == "Map":
            return {
                "type": "map",
                "keyType": {"type": "string"},
                "valueType": self.value.data_type(),  # type: ignore[union-attr]  # set for this kind
            }
        if self.kind == "Struct":
            return {
                "type": "struct",
                "fields": [{"name": n, "dataType": t.data_type()} for n, t in self.fields],
            }
        return {"type": _WIRE_SCALAR[self.kind]}

    def __str__(self) -> str:
        return self.spelling


def parse_type(text: str) -> FeatureType:
    """Parse a spelling such as `Array(Struct(a Int64, b String))`; raise TypeSyntaxError."""
    parser = _Parser(text)
    parsed = parser.parse_type()
    parser.expect_end()
    return parsed


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> TypeSyntaxError:
        return TypeSyntaxError(f"unknown type {self.text!r}: {what}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def word(self) -> str:
        self.skip_space()
        match = _FIELD_NAME.match(self.text, self.pos)
        if not match:
            raise self.fail(f"expected a name at position {self.pos}")
        self.pos = match.end()
        return match.group()

    def expect(self, char: str) -> None:
        self.skip_space()
        if not self.text.startswith(char, self.pos):
            raise self.fail(f"expected {char!r} at position {self.pos}")
        self.pos += 1

    def peek(self, char: str) -> bool:
        self.skip_space()
        return self.text.startswith(char, self.pos)

    def expect_end(self) -> None:
        self.skip_space()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected text at position {self.pos}")

    def parse_type(self) -> FeatureType:
        name = self.word()
        if name in SCALARS:
            return FeatureType(name)
        if name == "Array":
            self.expect("(")
            element = self.parse_type()
            self.expect(")")
            return FeatureType("Array", element=element)
        if name == "Map":
            self.expect("(")
            key = self.parse_type()
            if key.kind != "String":
                raise self.fail("map keys must be String")
            self.expect(",")
            value = self.parse_type()
            self.expect(")")
            return FeatureType("Map", value=value)
        if name == "Struct":
            self.expect("(")
            fields: list[tuple[str, FeatureType]] = []
            while True:
                field_name = self.word()
                if any(field_name == existing for existing, _ in fields):
                    raise self.fail(f"duplicate struct field {field_name!r}")
                fields.append((field_name, self.parse_type()))
                if not self.peek(","):
                    break
                self.expect(",")
            self.expect(")")
            return FeatureType("Struct", fields=tuple(fields))
        raise self.fail(f"{name!r} is not one of {', '.join(SCALARS)}, Array, Map, Struct")


# ----------------------------------------------------------------------------- wire encoding


_FLOAT32 = struct.Struct("<f")


def to_float32(value: float) -> float:
    """`value` rounded to the nearest float32 (NaN and infinities kept); ValueTypeError for a
    finite number beyond float32's range."""
    try:
        rounded: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    except OverflowError:
        raise ValueTypeError(f"number {value!r} is out of range for Float32") from None
    return rounded


def encode_float(value: float) -> float | int | str:
    """A float as protobuf JSON writes it: NaN/Infinity as strings, whole numbers as integers."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`: no fraction when it is zero, else milliseconds or micros."""
    value = value.astimezone(UTC)
    if value.microsecond == 0:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if value.microsecond % 1000 == 0:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_value(feature_type: FeatureType, value: Any) -> Any:
    """A Python value (already validated for `feature_type`) in wire encoding."""
    if value is None:
        return None
    kind = feature_type.kind
    if kind in ("Int64", "Int32"):
        return str(int(value))
    if kind == "Float64":
        return encode_float(float(value))
    if kind == "Float32":
        return encode_float(to_float32(float(value)))
    if kind == "Timestamp":
        return format_timestamp(value) if isinstance(value, datetime) else value
    if kind == "Array":
        element = feature_type.element
        return [encode_value(element, item) for item in value]  # type: ignore[arg-type]  # set for this kind
    if kind == "Map":
        return {str(k): encode_value(feature_type.value, v) for k, v in value.items()}  # type: ignore[arg-type]  # set for this kind
    if kind == "Struct":
        if isinstance(value, dict):
            return [encode_value(t, value.get(n)) for n, t in feature_type.fields]
        return [encode_value(t, v) for (_, t), v in zip(feature_type.fields, value, strict=True)]
    return value


def decode_value(feature_type: FeatureType, value: Any) -> Any:
    """A wire-encoded value back to Python (inputs of realtime transforms)."""
    if value is None:
        return None
    kind = feature_type.kind
    if kind in ("Int64", "Int32"):
        return int(value)
    if kind in ("Float64", "Float32"):
        return float(value)
    if kind == "Timestamp":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if kind == "Array":
        return [decode_value(feature_type.element, item) for item in value]  # type: ignore[arg-type]  # set for this kind
    if kind == "Map":
        return {k: decode_value(feature_type.value, v) for k, v in value.items()}  # type: ignore[arg-type]  # set for this kind
    if kind == "Struct":
        return {n: decode_value(t, v) for (n, t), v in zip(feature_type.fields, value, strict=True)}
    return value


# ----------------------------------------------------------------------------- input coercion

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


class ValueTypeError(ValueError):
    """A value that does not fit its declared type; the message names what was expected."""


# The forms most files use, which datetime.fromisoformat parses in C without help.
_COMMON_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})$"
)


@functools.lru_cache(maxsize=4096)  # bulk files repeat their timestamps a lot
def parse_timestamp(text: str) -> datetime:
    """ISO 8601 `YYYY-MM-DDThh:mm[:ss[.fffffffff]][Z|±hh:mm]`; no zone means UTC.

    Fractions beyond microseconds (Tecton accepts nanoseconds) are truncated.
    """
    if _COMMON_TIMESTAMP.match(text):
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError) as exc:  # month 13; year 1 east of UTC
            raise ValueTypeError(f"invalid timestamp {text!r}: {exc}") from None
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise ValueTypeError(
            f"invalid timestamp {text!r}; expected ISO 8601 such as 2024-01-31T12:00:00Z"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    iso = f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}.{micros:06d}"
    if zone is None or zone in ("Z", "z"):
        iso += "+00:00"
    else:
        iso += zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueTypeError(f"invalid timestamp {text!r}: {exc}") from None


def coerce_value(feature_type: FeatureType, value: Any) -> Any:
    """Check `value` (decoded JSON or a Python value) against `feature_type`; return it in Python
    form (ints, floats, datetimes, lists, dicts). Raise ValueTypeError saying what was expected.
    """
    if value is None:
        return None
    kind = feature_type.kind
    if kind == "String":
        if not isinstance(value, str):
            raise ValueTypeError(f"expected a string, got {_json_kind(value)}")
        if "\x00" in value:
            raise ValueTypeError("strings may not contain NUL (\\u0000) characters")
        return value
    if kind in ("Int64", "Int32"):
        low, high = (INT64_MIN, INT64_MAX) if kind == "Int64" else (INT32_MIN, INT32_MAX)
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            raise ValueTypeError(f"expected an integer, got {_json_kind(value)}")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueTypeError(f"expected an integer, got {value!r}")
            value = int(value)
        elif isinstance(value, str):
            if not re.fullmatch(r"[+-]?\d{1,20}", value.strip()):
                raise ValueTypeError(f"expected an integer, got {value!r}")
            value = int(value)
        if not low <= value <= high:
            raise ValueTypeError(f"integer {value} is out of range for {kind}")
        return value
    if kind in ("Float64", "Float32"):
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return float(value.replace("Infinity", "inf"))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueTypeError(f"expected a number, got {_json_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            raise ValueTypeError(f"number out of range for {kind}") from None
        return to_float32(number) if kind == "Float32" else number
    if kind == "Bool":
        if not isinstance(value, bool):
            raise ValueTypeError(f"expected a boolean, got {_json_kind(value)}")
        return value
    if kind == "Timestamp":
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if not isinstance(value, str):
            raise ValueTypeError(f"expected a timestamp string, got {_json_kind(value)}")
        return parse_timestamp(value)
    if kind == "Array":
        if not isinstance(value, list | tuple):
            raise ValueTypeError(f"expected an array, got {_json_kind(value)}")
        return [_nested(feature_type.element, item, f"[{i}]") for i, item in enumerate(value)]  # type: ignore[arg-type]  # set for this kind
    if kind == "Map":
        if not isinstance(value, dict):
            raise ValueTypeError(f"expected an object (map), got {_json_kind(value)}")
        return {
            _map_key(key): _nested(feature_type.value, item, f"[{key!r}]")  # type: ignore[arg-type]  # set for this kind
            for key, item in value.items()
        }
    if kind == "Struct":
        return _coerce_struct(feature_type, value)
    raise ValueTypeError(f"unsupported type {feature_type}")  # pragma: no cover


def _coerce_struct(feature_type: FeatureType, value: Any) -> dict[str, Any]:
    names = [name for name, _ in feature_type.fields]
    if isinstance(value, list | tuple):
        if len(value) != len(names):
            raise ValueTypeError(
                f"expected a struct of {len(names)} fields, got {len(value)} values"
            )
        value = dict(zip(names, value, strict=True))
    if not isinstance(value, dict):
        raise ValueTypeError(f"expected a struct (object or array), got {_json_kind(value)}")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueTypeError(
            f"unknown struct field(s) {', '.join(unknown)}; expected {', '.join(names)}"
        )
    return {name: _nested(t, value.get(name), f".{name}") for name, t in feature_type.fields}


def _nested(feature_type: FeatureType, value: Any, where: str) -> Any:
    try:
        return coerce_value(feature_type, value)
    except ValueTypeError as exc:
        raise ValueTypeError(f"{where}: {exc}") from None


def _map_key(key: Any) -> str:
    if not isinstance(key, str):
        raise ValueTypeError(f"map keys must be strings, got {_json_kind(key)}")
    if "\x00" in key:
        raise ValueTypeError("map keys may not contain NUL (\\u0000) characters")
    return key


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

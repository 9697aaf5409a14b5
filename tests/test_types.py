import math
from datetime import UTC, datetime

import pytest

from app.types import (
    TypeSyntaxError,
    ValueTypeError,
    coerce_value,
    decode_value,
    encode_value,
    format_timestamp,
    parse_timestamp,
    parse_type,
)


@pytest.mark.parametrize(
    ("spelling", "data_type"),
    [
        ("String", {"type": "string"}),
        ("Int32", {"type": "int64"}),
        ("Int64", {"type": "int64"}),
        ("Float32", {"type": "float32"}),
        ("Float64", {"type": "float64"}),
        ("Bool", {"type": "boolean"}),
        ("Timestamp", {"type": "timestamp"}),
        ("Array(Int64)", {"type": "array", "elementType": {"type": "int64"}}),
        (
            "Array(Array(String))",
            {"type": "array", "elementType": {"type": "array", "elementType": {"type": "string"}}},
        ),
        (
            "Map(String, Float64)",
            {"type": "map", "keyType": {"type": "string"}, "valueType": {"type": "float64"}},
        ),
        (
            "Struct(a Int64, b Array(String))",
            {
                "type": "struct",
                "fields": [
                    {"name": "a", "dataType": {"type": "int64"}},
                    {"name": "b", "dataType": {"type": "array", "elementType": {"type": "string"}}},
                ],
            },
        ),
    ],
)
def test_spellings_parse_to_tecton_data_types(spelling, data_type):
    parsed = parse_type(spelling)
    assert parsed.data_type() == data_type
    assert parse_type(parsed.spelling) == parsed


def test_spelling_is_canonical():
    assert parse_type(" Struct( a  Int64 ,b Map( String ,Bool) ) ").spelling == (
        "Struct(a Int64, b Map(String, Bool))"
    )


@pytest.mark.parametrize(
    "bad",
    ["Integer", "Array(Int64", "Map(Int64, String)", "Struct()", "Struct(a Int64, a String)", ""],
)
def test_unknown_types_are_refused(bad):
    with pytest.raises(TypeSyntaxError, match="unknown type"):
        parse_type(bad)


def test_wire_encoding_of_each_kind():
    assert encode_value(parse_type("Int64"), 669) == "669"
    assert encode_value(parse_type("Float64"), 0.0) == 0
    assert encode_value(parse_type("Float64"), 66353.56000000001) == 66353.56000000001
    assert encode_value(parse_type("Float64"), math.nan) == "NaN"
    assert encode_value(parse_type("Float64"), -math.inf) == "-Infinity"
    assert encode_value(parse_type("Bool"), True) is True
    assert encode_value(parse_type("Array(Int64)"), [0, 1, None, 3]) == ["0", "1", None, "3"]
    assert encode_value(parse_type("Map(String, Int64)"), {"this": 123}) == {"this": "123"}
    assert encode_value(parse_type("Struct(s String, f Float64)"), {"s": "2.46", "f": 2.46}) == [
        "2.46",
        2.46,
    ]
    assert encode_value(parse_type("Struct(a Int64, b Int64)"), {}) == [None, None]
    stamp = datetime(2023, 6, 13, 3, 20, 46, 563000, tzinfo=UTC)
    assert encode_value(parse_type("Timestamp"), stamp) == "2023-06-13T03:20:46.563Z"
    assert format_timestamp(datetime(2021, 8, 21, 1, 23, 58, tzinfo=UTC)) == "2021-08-21T01:23:58Z"


def test_decode_is_the_inverse_of_encode():
    spelling = "Struct(n Int64, xs Array(Float64), m Map(String, Timestamp))"
    value = {"n": 5, "xs": [1.5, 2.0], "m": {"t": datetime(2024, 1, 1, tzinfo=UTC)}}
    parsed = parse_type(spelling)
    assert decode_value(parsed, encode_value(parsed, value)) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T12:00", datetime(2024, 1, 31, 12, 0, tzinfo=UTC)),
        ("2024-01-31T12:00:05Z", datetime(2024, 1, 31, 12, 0, 5, tzinfo=UTC)),
        ("2024-01-31T12:00:05.123456789Z", datetime(2024, 1, 31, 12, 0, 5, 123456, tzinfo=UTC)),
        ("2024-01-31T14:00:00+02:00", datetime(2024, 1, 31, 12, 0, tzinfo=UTC)),
        ("2024-01-31T14:00:00+0200", datetime(2024, 1, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_iso_form(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("spelling", "value", "message"),
    [
        ("Int64", 2**63, "out of range"),
        ("Int64", "12x", "expected an integer"),
        ("Int64", True, "expected an integer, got a boolean"),
        ("Float64", "1.5", "expected a number"),
        ("String", "a\x00b", "NUL"),
        ("Bool", "true", "expected a boolean"),
        ("Timestamp", "yesterday", "invalid timestamp"),
        ("Array(Int64)", [1, "x"], r"\[1\]: expected an integer"),
        ("Struct(a Int64)", {"b": 1}, "unknown struct field"),
        ("Map(String, Bool)", {"k": 1}, "expected a boolean"),
    ],
)
def test_coercion_explains_what_was_expected(spelling, value, message):
    with pytest.raises(ValueTypeError, match=message):
        coerce_value(parse_type(spelling), value)


def test_coercion_accepts_tecton_input_forms():
    assert coerce_value(parse_type("Int64"), "-9223372036854775808") == -(2**63)
    assert math.isinf(coerce_value(parse_type("Float64"), "Infinity"))
    assert coerce_value(parse_type("Struct(a Int64, b String)"), [1, "x"]) == {"a": 1, "b": "x"}

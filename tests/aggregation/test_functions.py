"""The function catalogue: spellings, parameters, types and default names (reference §2-§3)."""

import pytest

from app.aggregation import FunctionError, Window, default_name, parse_function
from app.aggregation.durations import human_readable, parse_duration_us
from app.types import parse_type

H = 3_600_000_000
D = 24 * H
M = 60_000_000
S = 1_000_000


@pytest.mark.parametrize(
    ("spelling", "kind", "params"),
    [
        ("count", "count", {}),
        ("sum", "sum", {}),
        ("variance", "var_samp", {}),
        ("stddev", "stddev_samp", {}),
        ("last", "last", {}),
        ("last(3)", "last_n", {"n": 3}),
        ("first(1000)", "first_n", {"n": 1000}),
        ("last_distinct(3)", "last_distinct_n", {"n": 3}),
        ("first_distinct( 2 )", "first_distinct_n", {"n": 2}),
        ("approx_count_distinct()", "approx_count_distinct", {"precision": 8}),
        ("approx_count_distinct(12)", "approx_count_distinct", {"precision": 12}),
        ("approx_count_distinct(precision=16)", "approx_count_distinct", {"precision": 16}),
        ("approx_percentile(0.5)", "approx_percentile", {"percentile": 0.5, "precision": 100}),
        ("approx_percentile(0.99, 50)", "approx_percentile", {"percentile": 0.99, "precision": 50}),
        (
            "approx_percentile(percentile=0.0, precision=500)",
            "approx_percentile",
            {"percentile": 0.0, "precision": 500},
        ),
    ],
)
def test_spellings_parse(spelling, kind, params):
    function = parse_function(spelling)
    assert function.kind == kind
    for name, value in params.items():
        assert getattr(function, name) == value
    assert parse_function(function.spelling) == function  # the stored spelling reads back


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        ("last(0)", "n must be an integer from 1 to 1000, not 0"),
        ("last(1001)", "n must be an integer from 1 to 1000, not 1001"),
        ("first(2.5)", "n must be an integer from 1 to 1000, not 2.5"),
        ("approx_count_distinct(3)", "precision must be an integer from 4 to 16, not 3"),
        ("approx_count_distinct(17)", "precision must be an integer from 4 to 16, not 17"),
        ("approx_percentile(2.0)", "percentile must be a float from 0.0 to 1.0, not 2.0"),
        ("approx_percentile(1)", "percentile must be a float from 0.0 to 1.0, not 1 (write 1.0)"),
        ("approx_percentile(0.5, 10)", "precision must be an integer from 20 to 500, not 10"),
        ("approx_percentile()", "missing parameter 'percentile'"),
        ("last_distinct", "last_distinct needs parameters: last_distinct(n)"),
        ("sum(3)", "sum takes no parameters"),
        ("median", "unknown aggregation function 'median'; use one of count, sum"),
        ("last(3, 4)", "too many parameters"),
        ("last(m=3)", "unknown parameter 'm'"),
        ("last(x)", "n must be a number"),
    ],
)
def test_bad_spellings_say_what_is_wrong(spelling, message):
    with pytest.raises(FunctionError, match=None) as excinfo:
        parse_function(spelling)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("spelling", "accepted", "rejected"),
    [
        (
            "count",
            ["Float64", "String", "Bool", "Array(Int64)", "Timestamp", "Map(String, Int64)"],
            [],
        ),
        ("sum", ["Int64", "Int32", "Float64"], ["Float32", "String", "Bool"]),
        ("mean", ["Int64", "Int32", "Float64"], ["String", "Float32"]),
        ("min", ["Int64", "Int32", "Float64", "String"], ["Bool", "Array(Int64)"]),
        ("last", ["Int64", "Bool", "String", "Array(String)"], ["Float32", "Timestamp"]),
        ("stddev_pop", ["Int32"], ["String"]),
        ("last(2)", ["String", "Int64", "Float32", "Float64", "Bool", "Array(Int64)"], ["Int32"]),
        ("last_distinct(2)", ["String", "Int64"], ["Float64", "Int32", "Bool"]),
        ("approx_count_distinct()", ["String", "Int32", "Int64"], ["Float64"]),
        ("approx_percentile(0.5)", ["Float32", "Float64", "Int32", "Int64"], ["String"]),
    ],
)
def test_input_types(spelling, accepted, rejected):
    function = parse_function(spelling)
    assert all(function.accepts(parse_type(t)) for t in accepted)
    assert not any(function.accepts(parse_type(t)) for t in rejected)


@pytest.mark.parametrize(
    ("spelling", "input_type", "output"),
    [
        ("count", "String", "Int64"),
        ("sum", "Int64", "Int64"),
        ("sum", "Float64", "Float64"),
        ("sum", "Int32", "Int32"),  # served as int64 like every Int32
        ("mean", "Int64", "Float64"),
        ("max", "String", "String"),
        ("last", "Array(String)", "Array(String)"),
        ("var_pop", "Int32", "Float64"),
        ("last(3)", "String", "Array(String)"),
        ("first_distinct(3)", "Int64", "Array(Int64)"),
        ("approx_count_distinct()", "String", "Int64"),
        ("approx_percentile(0.5)", "Int64", "Float64"),
    ],
)
def test_output_types(spelling, input_type, output):
    assert parse_function(spelling).output_type(parse_type(input_type)) == output


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (30 * S, "30s"), (90 * S, "1m30s"), (M, "1m"), (10 * M, "10m"), (90 * M, "1h30m"),
        (H, "1h"), (24 * H, "1d"), (36 * H, "1d12h"), (72 * H, "3d"), (7 * D, "7d"),
        (14 * D, "14d"), (30 * D, "30d"), (365 * D, "365d"), (1460 * D, "1460d"), (0, "0s"),
        (S // 2, "0s"),
    ],
)  # fmt: skip
def test_durations_render_as_tecton_names_them(micros, text):
    assert human_readable(micros) == text


@pytest.mark.parametrize(
    ("text", "micros"),
    [("1h30m", 90 * M), ("90m", 90 * M), ("-1d", -D), ("7d", 7 * D), ("30s", 30 * S)],
)
def test_durations_parse(text, micros):
    assert parse_duration_us(text) == micros


@pytest.mark.parametrize("text", ["1w", "h", "1.5h", "", "1 hour"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_us(text)


TI, CO = "time_interval", "continuous"


@pytest.mark.parametrize(
    ("column", "function", "window", "interval", "mode", "name"),
    [
        ("amt", "sum", Window(H), 10 * M, TI, "amt_sum_1h_10m"),
        ("amt", "mean", Window(D), 10 * M, TI, "amt_mean_1d_10m"),
        ("amt", "mean", Window(3 * D), 10 * M, TI, "amt_mean_3d_10m"),
        ("transaction", "count", Window(30 * D), D, TI, "transaction_count_30d_1d"),
        ("transaction", "count", Window(90 * D), D, TI, "transaction_count_90d_1d"),
        ("is_fraud", "mean", Window(30 * D), D, TI, "is_fraud_mean_30d_1d"),
        ("clicked", "count", Window(24 * H), H, TI, "clicked_count_1d_1h"),
        ("clicked", "count", Window(72 * H), H, TI, "clicked_count_3d_1h"),
        ("clicked", "count", Window(H), None, CO, "clicked_count_1h_continuous"),
        ("amount", "sum", Window(M), None, CO, "amount_sum_1m_continuous"),
        ("amount", "sum", Window(30 * D), None, CO, "amount_sum_30d_continuous"),
        ("amt", "sum", Window(90 * M), 30 * M, TI, "amt_sum_1h30m_30m"),
        ("amt", "max", Window(36 * H), 6 * H, TI, "amt_max_1d12h_6h"),
        ("amt", "min", Window(90 * S), 30 * S, TI, "amt_min_1m30s_30s"),
        ("amt", "sum", Window(365 * D), D, TI, "amt_sum_365d_1d"),
        ("amt", "max", Window(1460 * D), D, TI, "amt_max_1460d_1d"),
        ("transaction", "count", Window(7 * D), H, TI, "transaction_count_7d_1h"),
        ("amt", "mean", Window(7 * D, -3 * D), D, TI, "amt_mean_7d_1d_offset_3d"),
        ("amt", "mean", Window(7 * D, -H), H, TI, "amt_mean_7d_1h_offset_1h"),
        ("amt", "mean", Window(7 * D, -D), None, CO, "amt_mean_7d_continuous_offset_1d"),
        ("amt", "mean", Window(None), D, TI, "amt_mean_lifetime_1d"),
        ("transaction_id", "last(3)", Window(D), D, TI, "transaction_id_last_3_1d_1d"),
        ("transaction_id", "last(1000)", Window(D), D, TI,
         "transaction_id_last_1000_1d_1d"),
        ("transaction_id", "last_distinct(3)", Window(D), D, TI,
         "transaction_id_last_distinct_3_1d_1d"),
        ("transaction_id", "first_distinct(3)", Window(D), D, TI,
         "transaction_id_first_distinct_3_1d_1d"),
        ("transaction_id", "first(3)", Window(D), D, TI, "transaction_id_first_3_1d_1d"),
        ("merchant", "approx_count_distinct()", Window(30 * D), D, TI,
         "merchant_approx_count_distinct_30d_1d"),
        ("merchant", "approx_count_distinct(12)", Window(30 * D), D, TI,
         "merchant_approx_count_distinct_30d_1d"),
        ("amt", "approx_percentile(0.5)", Window(D), H, TI, "amt_approx_percentile_p0_5_1d_1h"),
        ("amt", "approx_percentile(0.95, 500)", Window(D), H, TI,
         "amt_approx_percentile_p0_95_1d_1h"),
        ("amt", "approx_percentile(0.999)", Window(D), H, TI,
         "amt_approx_percentile_p0_999_1d_1h"),
        ("amt", "approx_percentile(0.0)", Window(D), H, TI, "amt_approx_percentile_p0_0_1d_1h"),
        ("amt", "approx_percentile(1.0)", Window(D), H, TI, "amt_approx_percentile_p1_0_1d_1h"),
        ("amt", "approx_percentile(0.5)", Window(D), 10 * M, TI,
         "amt_approx_percentile_p0_5_1d_10m"),
        ("amt", "last", Window(D), H, TI, "amt_last_1d_1h"),
        ("amt", "stddev", Window(D), H, TI, "amt_stddev_1d_1h"),
        ("amt", "variance", Window(D), H, TI, "amt_variance_1d_1h"),
        ("amt", "SUM", Window(D), H, TI, "amt_SUM_1d_1h"),
        ("transaction_id", "count", Window(None), None, CO,
         "transaction_id_count_lifetime_continuous"),
    ],
)  # fmt: skip
def test_default_names_are_tectons(column, function, window, interval, mode, name):
    assert default_name(column, parse_function(function), window, interval, mode) == name

"""Every function computed from events through tiles, with hand-computed expected values."""

import itertools
import json
import math
import random

import pytest

from app.aggregation import Event
from tests.aggregation.helpers import at, events, read, spec_of, tiles_of

NOW = "2024-07-29T13:05:00"
# Four events inside the 1d window [07-28T13:00, 07-29T13:00) over three hourly tiles.
ROWS = events(
    ("2024-07-29T10:15:00", {"amt": 10.0, "qty": 3, "merchant": "b", "flag": True}),
    ("2024-07-29T10:45:00", {"amt": 2.5, "qty": -1, "merchant": "a", "flag": False}),
    ("2024-07-29T11:00:00", {"amt": None, "qty": 7, "merchant": "b", "flag": None}),
    ("2024-07-29T12:59:59.999999", {"amt": 4.0, "qty": 5, "merchant": "c", "flag": True}),
)


def one(function, column, rows=ROWS, window="1d", now=NOW, interval="1h", mode=None):
    spec = spec_of([{"function": function, "column": column, "window": window}], interval, mode)
    (value,) = read(spec, now, rows).values()
    return value


@pytest.mark.parametrize(
    ("function", "column", "expected"),
    [
        ("count", "amt", 3),  # the null amt is not counted
        ("count", "qty", 4),
        ("sum", "amt", 16.5),
        ("sum", "qty", 14),
        ("mean", "amt", 5.5),
        ("mean", "qty", 3.5),
        ("min", "qty", -1),
        ("max", "amt", 10.0),
        ("min", "merchant", "a"),
        ("max", "merchant", "c"),
        ("last", "amt", 4.0),
        ("last", "flag", True),
        ("var_pop", "qty", 8.75),  # deviations -0.5,-4.5,3.5,1.5 → 35/4
        ("var_samp", "qty", 35 / 3),
        ("variance", "qty", 35 / 3),
        ("stddev_pop", "qty", math.sqrt(8.75)),
        ("stddev", "qty", math.sqrt(35 / 3)),
        ("stddev_samp", "amt", math.sqrt(((10 - 5.5) ** 2 + 3**2 + 1.5**2) / 2)),
        ("last(2)", "merchant", ["b", "c"]),
        ("last(10)", "qty", [3, -1, 7, 5]),
        ("first(2)", "merchant", ["b", "a"]),
        ("last(3)", "amt", [10.0, 2.5, 4.0]),  # nulls excluded
        ("last_distinct(2)", "merchant", ["b", "c"]),
        ("last_distinct(3)", "merchant", ["a", "b", "c"]),  # b's latest occurrence is 11:00
        ("first_distinct(2)", "merchant", ["b", "a"]),
        ("first_distinct(5)", "merchant", ["b", "a", "c"]),
        ("approx_count_distinct()", "merchant", 3),
        ("approx_count_distinct(4)", "qty", 4),
        ("approx_percentile(0.5)", "amt", 4.0),  # sorted 2.5, 4, 10: index ⌊1.5⌋
        ("approx_percentile(0.0)", "qty", -1.0),
        ("approx_percentile(1.0)", "qty", 7.0),
        ("approx_percentile(0.25)", "qty", 3.0),  # sorted -1, 3, 5, 7: index 1
    ],
)
def test_each_function(function, column, expected):
    value = one(function, column)
    if isinstance(expected, float):
        assert value == pytest.approx(expected, rel=1e-12)
        assert isinstance(value, float)
    else:
        assert value == expected
        assert type(value) is type(expected)


@pytest.mark.parametrize(
    "function",
    ["count", "sum", "mean", "min", "max", "last", "var_samp", "stddev_pop", "last(3)",
     "first_distinct(3)", "approx_count_distinct()", "approx_percentile(0.5)"],
)  # fmt: skip
def test_an_empty_window_is_null(function):
    column = "merchant" if "distinct" in function else "qty"
    assert one(function, column, rows=[]) is None
    late = events(("2024-07-29T13:00:00", {"qty": 1, "merchant": "x"}))  # the partial tile
    assert one(function, column, rows=late) is None


@pytest.mark.parametrize(
    ("function", "expected"),
    [("count", 0), ("sum", None), ("mean", None), ("min", None), ("last", None),
     ("var_pop", None), ("last(2)", None), ("approx_percentile(0.5)", None),
     ("approx_count_distinct()", None)],
)  # fmt: skip
def test_all_null_inputs(function, expected):
    rows = events(("2024-07-29T10:00:00", {"qty": None}), ("2024-07-29T11:00:00", {}))
    assert one(function, "qty", rows=rows) == expected


def test_a_single_value():
    rows = events(("2024-07-29T10:00:00", {"qty": 4}))
    assert one("var_samp", "qty", rows=rows) is None
    assert one("stddev_samp", "qty", rows=rows) is None
    assert one("var_pop", "qty", rows=rows) == 0.0
    assert one("stddev_pop", "qty", rows=rows) == 0.0
    assert one("mean", "qty", rows=rows) == 4.0


def test_nan_and_infinities_are_skipped_by_approx_percentile_only():
    rows = events(
        ("2024-07-29T10:00:00", {"amt": 1.0}),
        ("2024-07-29T10:01:00", {"amt": math.nan}),
        ("2024-07-29T10:02:00", {"amt": math.inf}),
        ("2024-07-29T10:03:00", {"amt": -math.inf}),
    )
    assert one("approx_percentile(1.0)", "amt", rows=rows) == 1.0
    assert one("count", "amt", rows=rows) == 4
    assert one("max", "amt", rows=rows) == math.inf
    spec = spec_of([{"function": "max", "column": "amt", "window": "1d"}])
    (tile,) = [t for _, t in tiles_of(spec, rows)]
    assert json.loads(json.dumps(tile)) == tile  # non-finite floats are stored as valid JSON


def test_ties_on_timestamps_go_to_the_later_ingested_event():
    rows = events(
        ("2024-07-29T10:00:00", {"merchant": "first"}),
        ("2024-07-29T10:00:00", {"merchant": "second"}),
        ("2024-07-29T09:00:00", {"merchant": "early"}),
    )
    assert one("last", "merchant", rows=rows) == "second"
    assert one("last(2)", "merchant", rows=rows) == ["first", "second"]
    assert one("first(2)", "merchant", rows=rows) == ["early", "first"]
    # Ingested in the other order, the tie goes the other way.
    swapped = [Event(e.timestamp, 2 - e.sequence, e.values) for e in rows]
    assert one("last", "merchant", rows=swapped) == "first"


def test_late_events_land_in_their_own_tile_and_count_when_complete():
    spec = spec_of([{"function": "sum", "column": "qty", "window": "1d"}])
    rows = events(("2024-07-29T12:30:00", {"qty": 1}))
    assert read(spec, NOW, rows) == {"qty_sum_1d_1h": 1}
    late = [*rows, Event(at("2024-07-29T09:10:00"), 5, {"qty": 10})]  # arrives after, older
    assert read(spec, NOW, late) == {"qty_sum_1d_1h": 11}
    assert [start.hour for start, _ in tiles_of(spec, late)] == [9, 12]


def test_window_edges_of_the_worked_example():
    """Reference §4.3 (1): x_count_1d_1h at 13:05 → [07-28T13:00, 07-29T13:00)."""
    spec = spec_of([{"function": "count", "column": "qty", "window": "1d"}])
    inside = ["2024-07-28T13:00:00", "2024-07-29T12:59:59.999999", "2024-07-29T00:00:00"]
    outside = ["2024-07-28T12:59:59.999999", "2024-07-29T13:00:00", "2024-07-29T13:04:00"]
    rows = events(*[(ts, {"qty": 1}) for ts in inside + outside])
    assert read(spec, NOW, rows) == {"qty_count_1d_1h": 3}


def test_a_frozen_clock_moved_across_a_tile_boundary():
    spec = spec_of([{"function": "sum", "column": "qty", "window": "2h"}])
    rows = events(
        ("2024-07-29T10:30:00", {"qty": 1}),
        ("2024-07-29T11:30:00", {"qty": 10}),
        ("2024-07-29T12:30:00", {"qty": 100}),
    )
    # Until 13:00 the window is [10:00, 12:00); from 13:00 it is [11:00, 13:00).
    assert read(spec, "2024-07-29T12:59:59.999999", rows) == {"qty_sum_2h_1h": 11}
    assert read(spec, "2024-07-29T13:00:00", rows) == {"qty_sum_2h_1h": 110}
    assert read(spec, "2024-07-29T14:59:59", rows) == {"qty_sum_2h_1h": 100}
    assert read(spec, "2024-07-29T15:00:00", rows) == {"qty_sum_2h_1h": None}


def test_offset_window_of_the_worked_example():
    """Reference §4.3 (4): 7d offset -1d, 1d interval, at 07-29T13:05 → [07-21, 07-28)."""
    spec = spec_of(
        [{"function": "count", "column": "qty", "window": {"size": "7d", "offset": "-1d"}}], "1d"
    )
    rows = events(
        ("2024-07-20T23:59:59", {"qty": 1}), ("2024-07-21T00:00:00", {"qty": 1}),
        ("2024-07-27T23:59:59", {"qty": 1}), ("2024-07-28T00:00:00", {"qty": 1}),
    )  # fmt: skip
    assert read(spec, NOW, rows) == {"qty_count_7d_1d_offset_1d": 2}


def test_lifetime_counts_every_complete_tile():
    spec = spec_of([{"function": "count", "column": "qty", "window": "lifetime"}], "1d")
    rows = events(("2001-01-01T00:00:00", {"qty": 1}), ("2024-07-28T23:00:00", {"qty": 2}),
                  ("2024-07-29T01:00:00", {"qty": 3}))  # fmt: skip
    assert read(spec, NOW, rows) == {"qty_count_lifetime_1d": 2}
    assert spec.ttl_us is None


def test_continuous_worked_example():
    """Reference §4.3 (2): x_sum_1h_continuous at 13:05:20.5 → (12:05:20.5, 13:05:20.5]."""
    spec = spec_of([{"function": "sum", "column": "qty", "window": "1h"}], None)
    assert spec.mode == "continuous"
    rows = events(
        ("2024-07-29T12:05:20.500000", {"qty": 1}),  # on the open start: out
        ("2024-07-29T12:05:20.500001", {"qty": 10}),
        ("2024-07-29T12:30:00", {"qty": 100}),
        ("2024-07-29T13:05:20.500000", {"qty": 1000}),  # on the closed end: in
        ("2024-07-29T13:05:20.500001", {"qty": 10000}),
    )
    now = at("2024-07-29T13:05:20.5")
    tiles = tiles_of(spec, rows)
    plan = spec.read_plan(now)
    # A reader fetches only tiles in the plan's range and raw events in its ranges.
    fetched_tiles = [(s, t) for s, t in tiles if plan.tiles_from <= s < plan.tiles_before]
    fetched_events = [e for e in rows if any(a < e.timestamp <= b for a, b in plan.raw_ranges)]
    assert spec.compute(now, fetched_tiles, fetched_events) == {"qty_sum_1h_continuous": 1110}
    assert len(fetched_events) == 2  # the two ragged ends only; 12:30 is in a whole tile
    assert spec.effective_time(now) == now


def test_continuous_lifetime_and_offsets():
    spec = spec_of(
        [{"function": "count", "column": "qty", "window": "lifetime"},
         {"function": "count", "column": "qty", "window": {"size": "1d", "offset": "-1d"}}],
        None,
    )  # fmt: skip
    rows = events(("2020-01-01T00:00:00", {"qty": 1}), ("2024-07-28T10:00:00", {"qty": 1}),
                  ("2024-07-28T13:05:00", {"qty": 1}), ("2024-07-29T13:05:00", {"qty": 1}),
                  ("2024-07-29T13:06:00", {"qty": 1}))  # fmt: skip
    assert read(spec, NOW, rows) == {
        "qty_count_lifetime_continuous": 4,
        "qty_count_1d_continuous_offset_1d": 2,  # (07-27T13:05, 07-28T13:05]
    }


def _merge_in_order(spec, evs, order):
    tile = None
    for index in order:
        tile = spec.merge_into_tile(tile, [evs[index]])
    return tile


def test_merging_in_any_order_gives_the_same_result():
    features = [
        {"function": f, "column": c, "window": "1h"}
        for f, c in [("count", "qty"), ("sum", "qty"), ("mean", "qty"), ("var_samp", "qty"),
                     ("min", "merchant"), ("max", "qty"), ("last", "merchant"),
                     ("last(3)", "merchant"), ("first(3)", "qty"), ("last_distinct(2)", "merchant"),
                     ("first_distinct(2)", "merchant"), ("approx_count_distinct()", "merchant"),
                     ("approx_percentile(0.5)", "qty")]
    ]  # fmt: skip
    spec = spec_of(features)
    evs = events(*[(f"2024-07-29T12:{m:02d}:00", {"qty": q, "merchant": mm})
                   for m, q, mm in [(1, 4, "x"), (5, 2, "y"), (5, 9, "x"), (30, 1, "z"),
                                    (59, 6, "y")]])  # fmt: skip
    results = set()
    for order in itertools.permutations(range(len(evs))):
        tile = _merge_in_order(spec, evs, order)
        start = spec.tile_start(evs[0].timestamp)
        results.add(json.dumps(spec.compute(at(NOW), [(start, tile)]), sort_keys=True))
    # Tiles merged with each other in any grouping too.
    halves = [spec.merge_into_tile(None, evs[:2]), spec.merge_into_tile(None, evs[2:])]
    merged = spec.read_tile(halves[1])
    for key, partial in spec.read_tile(halves[0]).items():
        merged[key] = partial.merge(merged[key])
    tile = {key: p.to_json() for key, p in merged.items()}
    results.add(json.dumps(spec.compute(at(NOW), [(at("2024-07-29T12:00:00"), tile)]),
                           sort_keys=True))  # fmt: skip
    assert len(results) == 1
    assert json.loads(results.pop()) == {
        "qty_count_1h_1h": 5, "qty_sum_1h_1h": 22, "qty_mean_1h_1h": 4.4,
        "qty_var_samp_1h_1h": 10.3, "merchant_min_1h_1h": "x", "qty_max_1h_1h": 9,
        "merchant_last_1h_1h": "y", "merchant_last_3_1h_1h": ["x", "z", "y"],
        "qty_first_3_1h_1h": [4, 2, 9], "merchant_last_distinct_2_1h_1h": ["z", "y"],
        "merchant_first_distinct_2_1h_1h": ["x", "y"],
        "merchant_approx_count_distinct_1h_1h": 3, "qty_approx_percentile_p0_5_1h_1h": 4.0,
    }  # fmt: skip


def test_tiles_round_trip_through_json():
    spec = spec_of([{"function": "approx_count_distinct()", "column": "qty", "window": "1d"},
                    {"function": "last", "column": "tags", "window": "1d"},
                    {"function": "sum", "column": "qty", "window": "1d"}])  # fmt: skip
    rows = events(*[("2024-07-29T10:00:00", {"qty": i, "tags": ["a", str(i)]})
                    for i in range(255)])  # fmt: skip
    rows.append(Event(at("2024-07-29T10:00:01"), 999, {"qty": 2**62, "tags": None}))
    tiles = [(s, json.loads(json.dumps(t))) for s, t in tiles_of(spec, rows)]
    assert spec.compute(at(NOW), tiles) == {
        "qty_approx_count_distinct_1d_1h": 256,  # up to 2^precision distinct values: exact
        "tags_last_1d_1h": ["a", "254"],
        "qty_sum_1d_1h": sum(range(255)) + 2**62,
    }
    assert len(tiles[0][1]["distinct8:qty"]["v"]) == 256
    more = [*rows, Event(at("2024-07-29T11:00:00"), 1000, {"qty": -1, "tags": []})]
    tiles = [(s, json.loads(json.dumps(t))) for s, t in tiles_of(spec, more)]
    assert spec.compute(at(NOW), tiles)["qty_approx_count_distinct_1d_1h"] == 257
    big = [*more, *events(*[("2024-07-29T12:00:00", {"qty": -i}) for i in range(2, 400)])]
    tiles = [(s, json.loads(json.dumps(t))) for s, t in tiles_of(spec, big)]
    assert "hll" in tiles[-1][1]["distinct8:qty"]  # 398 distinct: a sketch
    estimate = spec.compute(at(NOW), tiles)["qty_approx_count_distinct_1d_1h"]
    assert abs(estimate - 655) <= 3 * 1.04 / 16 * 655


def test_approx_functions_are_within_their_documented_error_on_100000_distinct_values():
    spec = spec_of([{"function": "approx_count_distinct()", "column": "qty", "window": "1d"},
                    {"function": "approx_count_distinct(12)", "column": "qty", "window": "1d",
                     "name": "distinct_12"},
                    {"function": "approx_percentile(0.5)", "column": "qty", "window": "1d"},
                    {"function": "approx_percentile(0.99)", "column": "qty",
                     "window": "1d"}])  # fmt: skip
    values = list(range(100_000))
    random.Random(7).shuffle(values)
    # Ten tiles of 10,000 events each, merged at read time.
    tiles = []
    for hour in range(10):
        chunk = values[hour * 10_000 : (hour + 1) * 10_000]
        start = at(f"2024-07-29T{hour:02d}:00:00")
        tile = spec.merge_into_tile(
            None, [Event(start, i, {"qty": v}) for i, v in enumerate(chunk)]
        )
        tiles.append((start, tile))
    result = spec.compute(at(NOW), tiles)
    # HLL: relative standard error 1.04/√2^p; allow three of them.
    assert abs(result["qty_approx_count_distinct_1d_1h"] - 100_000) <= 3 * 1.04 / 16 * 100_000
    assert abs(result["distinct_12"] - 100_000) <= 3 * 1.04 / 64 * 100_000
    # KLL (k = 200): normalised rank error ≈ 1.3 % at 99 % confidence.
    assert abs(result["qty_approx_percentile_p0_5_1d_1h"] - 50_000) <= 0.0133 * 100_000
    assert abs(result["qty_approx_percentile_p0_99_1d_1h"] - 99_000) <= 0.0133 * 100_000

"""`tectonite ingest`: CSV, JSON Lines and Parquet; validation; nothing written on a bad row."""

from __future__ import annotations

import builtins
import csv
import tracemalloc

import orjson
import pytest

from app.ingest import bulk
from tests.ingest import apply_definitions, stored, view_id


@pytest.fixture
def ws(runner, tmp_path):
    apply_definitions(runner, tmp_path)
    return "prod"


HEADER = [
    "user_id",
    "timestamp",
    "name",
    "level",
    "score",
    "active",
    "seen",
    "flags",
    "attrs",
    "home",
]
ROWS = [
    [
        "u1",
        "2026-11-01T00:00:00Z",
        "Ann",
        "7",
        "0.5",
        "true",
        "2026-10-01T12:00:00+02:00",
        "[true,false]",
        '{"a": 1, "b": 2}',
        '{"lat": 37.5, "lng": -122.25}',
    ],
    ["u2", "2026-11-01T00:00:00.123456789", "", "", "", "", "", "", "", ""],
    [
        "u3",
        "2026-11-01T01:00",
        "Cé",
        "-9223372036854775808",
        "3",
        "false",
        "2026-10-01T00:00:00Z",
        "[]",
        "{}",
        "[1.5, 2]",
    ],
]
EXPECTED = {
    '["u1"]': (
        "2026-11-01T00:00:00.000000Z",
        {
            "name": "Ann",
            "level": "7",
            "score": 0.5,
            "active": True,
            "seen": "2026-10-01T10:00:00Z",
            "flags": [True, False],
            "attrs": {"a": "1", "b": "2"},
            "home": [37.5, -122.25],
        },
    ),
    '["u2"]': (
        "2026-11-01T00:00:00.123456Z",
        {
            "name": None,
            "level": None,
            "score": None,
            "active": None,
            "seen": None,
            "flags": None,
            "attrs": None,
            "home": None,
        },
    ),
    '["u3"]': (
        "2026-11-01T01:00:00.000000Z",
        {
            "name": "Cé",
            "level": "-9223372036854775808",
            "score": 3,
            "active": False,
            "seen": "2026-10-01T00:00:00Z",
            "flags": [],
            "attrs": {},
            "home": [1.5, 2],
        },
    ),
}


def write_csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, objects):
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objects))
    return path


def ingest(runner, path, *extra, view="profile"):
    return runner.invoke("ingest", "--workspace", "prod", "--feature-view", view, str(path), *extra)


# ----------------------------------------------------------------------------- formats


def test_csv_with_every_type(runner, database, ws, tmp_path):
    result = ingest(runner, write_csv(tmp_path / "p.csv", HEADER, ROWS))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "read 3, written 3, skipped 0 as older"
    assert stored(database, "profile") == EXPECTED


def test_jsonl_with_native_json(runner, database, ws, tmp_path):
    objects = [
        {
            "user_id": "u1",
            "timestamp": "2026-11-01T00:00:00Z",
            "name": "Ann",
            "level": 7,
            "score": 0.5,
            "active": True,
            "seen": "2026-10-01T12:00:00+02:00",
            "flags": [True, False],
            "attrs": {"a": 1, "b": "2"},
            "home": {"lat": 37.5, "lng": -122.25},
        },
        {"user_id": "u2", "timestamp": "2026-11-01T00:00:00.123456789"},  # absent features: null
        {
            "user_id": "u3",
            "timestamp": "2026-11-01T01:00",
            "name": "Cé",
            "level": "-9223372036854775808",
            "score": 3,
            "active": False,
            "seen": "2026-10-01T00:00:00Z",
            "flags": [],
            "attrs": {},
            "home": [1.5, 2],
        },
    ]
    path = write_jsonl(tmp_path / "p.jsonl", objects)
    result = ingest(runner, path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "read 3, written 3, skipped 0 as older"
    assert stored(database, "profile") == EXPECTED


def test_parquet_with_native_types(runner, database, ws, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from datetime import UTC, datetime

    table = pa.table(
        {
            "user_id": ["u1", "u2", "u3"],
            "timestamp": pa.array(
                [
                    datetime(2026, 11, 1, tzinfo=UTC),
                    datetime(2026, 11, 1, 0, 0, 0, 123456, tzinfo=UTC),
                    datetime(2026, 11, 1, 1, tzinfo=UTC),
                ],
                type=pa.timestamp("ns", tz="UTC"),
            ),
            "name": ["Ann", None, "Cé"],
            "level": pa.array([7, None, -(2**63)], type=pa.int64()),
            "score": [0.5, None, 3.0],
            "active": [True, None, False],
            "seen": pa.array(
                [datetime(2026, 10, 1, 10, tzinfo=UTC), None, datetime(2026, 10, 1, tzinfo=UTC)],
                type=pa.timestamp("us", tz="UTC"),
            ),
            "flags": [[True, False], None, []],
            "attrs": pa.array(
                [[("a", 1), ("b", 2)], None, []], type=pa.map_(pa.string(), pa.int64())
            ),
            "home": pa.array(
                [{"lat": 37.5, "lng": -122.25}, None, {"lat": 1.5, "lng": 2.0}],
                type=pa.struct([("lat", pa.float64()), ("lng", pa.float64())]),
            ),
        }
    )
    path = tmp_path / "p.parquet"
    pq.write_table(table, path)
    result = ingest(runner, path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "read 3, written 3, skipped 0 as older"
    assert stored(database, "profile") == EXPECTED


def test_parquet_without_pyarrow_says_how_to_get_it(runner, ws, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    path = tmp_path / "p.parquet"
    path.write_bytes(b"PAR1")
    result = ingest(runner, path)
    assert result.exit_code != 0
    assert "reading Parquet needs pyarrow: pip install 'tectonite[parquet]'" in result.stderr


def test_format_option_and_timestamp_column(runner, database, ws, tmp_path):
    path = write_csv(
        tmp_path / "rates.txt",
        ["event_at", "merchant_id", "rate"],
        [["2026-11-01T00:00:00Z", "0042", "0.25"]],
    )
    result = ingest(
        runner, path, "--format", "csv", "--timestamp-column", "event_at", view="merchant_stats"
    )
    assert result.exit_code == 0, result.output
    assert stored(database, "merchant_stats") == {
        '["42"]': ("2026-11-01T00:00:00.000000Z", {"rate": 0.25})
    }


def test_unknown_suffix_needs_format(runner, ws, tmp_path):
    path = write_csv(tmp_path / "p.txt", HEADER, ROWS)
    result = ingest(runner, path)
    assert result.exit_code == 2
    assert "--format" in result.stderr


def test_example_data_loads(runner, database, tmp_path):
    from tests.repo.helpers import copy_example

    runner.ok("workspace", "create", "prod")
    features = copy_example(tmp_path)
    runner.ok("apply", "-f", str(features), "--workspace", "prod", "--yes")
    for name in (
        "user_profile",
        "user_transaction_counts",
        "user_transaction_amount_metrics",
        "merchant_fraud_rate",
    ):
        result = ingest(runner, features.parent / "data" / f"{name}.csv", view=name)
        assert result.exit_code == 0, result.output
    assert stored(database, "user_profile")['["user_1"]'][1]["home_location"] == [
        37.7749,
        -122.4194,
    ]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            ["u9", "2026-11-01T00:00:00Z", "x", "seven", "", "", "", "", "", ""],
            "line 3: column `level`: expected an integer, got 'seven'",
        ),
        (
            ["u9", "2026-11-01T00:00:00Z", "x", "9223372036854775808", "", "", "", "", "", ""],
            "line 3: column `level`: integer 9223372036854775808 is out of range for Int64",
        ),
        (
            ["u9", "2026-11-01T00:00:00Z", "x", "", "abc", "", "", "", "", ""],
            "line 3: column `score`: expected a number, got 'abc'",
        ),
        (
            ["u9", "2026-11-01T00:00:00Z", "x", "", "", "yes", "", "", "", ""],
            "line 3: column `active`: expected true or false, got 'yes'",
        ),
        (
            ["u9", "01/11/2026", "x", "", "", "", "", "", "", ""],
            "line 3: column `timestamp`: invalid timestamp '01/11/2026'; expected ISO 8601 such "
            "as 2024-01-31T12:00:00Z",
        ),
        (
            ["", "2026-11-01T00:00:00Z", "x", "", "", "", "", "", "", ""],
            "line 3: column `user_id`: a join key may not be null or empty",
        ),
        (
            ["u9", "", "x", "", "", "", "", "", "", ""],
            "line 3: column `timestamp`: the event timestamp may not be null or empty",
        ),
        (
            ["u9", "2026-11-01T00:00:00Z", "x", "", "", "", "", "[true", "", ""],
            "line 3: column `flags`: expected JSON text for Array(Bool), got '[true'",
        ),
        (
            ["u9", "2026-11-01T00:00:00Z", "x", "", "", "", "", "", '{"a": "z"}', ""],
            "line 3: column `attrs`: ['a']: expected an integer, got 'z'",
        ),
        (
            ["u9", "2026-11-01T00:00:00Z", "x", "", "", "", "", "", "", '{"lat": 1, "alt": 2}'],
            "line 3: column `home`: unknown struct field(s) alt; expected lat, lng",
        ),
        (["u9", "2026-11-01T00:00:00Z", "x"], "line 3: expected 10 values, found 3"),
    ],
)
def test_a_bad_row_in_the_middle_writes_nothing(runner, database, ws, tmp_path, row, message):
    rows = [ROWS[0], row, ROWS[2]]
    result = ingest(runner, write_csv(tmp_path / "p.csv", HEADER, rows))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [message, "Nothing was written."]
    assert result.stdout == ""
    assert stored(database, "profile") == {}


def test_every_bad_line_is_reported(runner, database, ws, tmp_path):
    rows = [["u", "2026-11-01T00:00:00Z", "", "x", "", "", "", "", "", ""]] * 60
    result = ingest(runner, write_csv(tmp_path / "p.csv", HEADER, rows))
    lines = result.stderr.splitlines()
    assert result.exit_code == 1
    assert lines[0].startswith("line 2: ")
    assert lines[49].startswith("line 51: ")
    assert lines[50:] == ["... and 10 more invalid line(s)", "Nothing was written."]


def test_header_problems(runner, database, ws, tmp_path):
    header = [c for c in HEADER if c != "score"] + ["bogus"]
    result = ingest(runner, write_csv(tmp_path / "p.csv", header, []))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "line 1: missing column(s) `score`; unknown column(s) `bogus`; expected `user_id`, "
        "`timestamp`, `name`, `level`, `score`, `active`, `seen`, `flags`, `attrs`, `home`"
    )


def test_quoted_multiline_values_keep_line_numbers(runner, ws, tmp_path):
    rows = [
        ["u1", "2026-11-01T00:00:00Z", "two\nlines", "", "", "", "", "", "", ""],
        ["u2", "2026-11-01T00:00:00Z", "", "x", "", "", "", "", "", ""],
    ]
    result = ingest(runner, write_csv(tmp_path / "p.csv", HEADER, rows))
    assert result.stderr.splitlines()[0].startswith("line 4: column `level`")


def test_jsonl_bad_lines(runner, database, ws, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"user_id": "u1", "timestamp": "2026-11-01T00:00:00Z"}\n'
        "\n"
        "{oops\n"
        "[1]\n"
        '{"user_id": "u1", "timestamp": "2026-11-01T00:00:00Z", "level": 1.5}\n'
        '{"user_id": "u1", "timestamp": "2026-11-01T00:00:00Z", "extra": 1}\n'
    )
    result = ingest(runner, path)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("line 3: invalid JSON")
    assert lines[1:] == [
        "line 4: expected a JSON object",
        "line 5: column `level`: expected an integer, got 1.5",
        "line 6: unknown column(s) `extra`; expected `user_id`, `timestamp`, `name`, `level`, "
        "`score`, `active`, `seen`, `flags`, `attrs`, `home`",
        "Nothing was written.",
    ]
    assert stored(database, "profile") == {}


def test_unknown_workspace_view_and_realtime_view(runner, ws, tmp_path):
    path = write_csv(tmp_path / "p.csv", HEADER, ROWS)
    result = runner.invoke("ingest", "--workspace", "nope", "--feature-view", "profile", str(path))
    assert result.exit_code == 1
    assert 'workspace "nope" does not exist' in result.stderr
    result = ingest(runner, path, view="nope")
    assert result.exit_code == 1
    assert 'feature view "nope" does not exist in workspace "prod"' in result.stderr


# ----------------------------------------------------------------------------- semantics


def test_older_rows_are_skipped_and_replay_is_idempotent(runner, database, ws, tmp_path):
    first = write_csv(
        tmp_path / "a.csv",
        ["merchant_id", "timestamp", "rate"],
        [
            ["1", "2026-11-02T00:00:00Z", "0.2"],
            ["2", "2026-11-02T00:00:00Z", "0.2"],
        ],
    )
    assert ingest(runner, first, view="merchant_stats").stdout.strip() == (
        "read 2, written 2, skipped 0 as older"
    )
    second = write_csv(
        tmp_path / "b.csv",
        ["merchant_id", "timestamp", "rate"],
        [
            ["1", "2026-11-01T00:00:00Z", "0.1"],  # older than stored: skipped
            ["2", "2026-11-03T00:00:00Z", "0.3"],  # newer: written
            ["3", "2026-11-01T00:00:00Z", "0.5"],  # duplicates in the file: newest wins ...
            ["3", "2026-11-02T00:00:00Z", "0.6"],
            ["3", "2026-11-02T00:00:00Z", "0.7"],  # ... the last one on a tie
            ["3", "2026-10-02T00:00:00Z", "0.8"],
        ],
    )
    result = ingest(runner, second, view="merchant_stats")
    assert result.stdout.strip() == "read 6, written 2, skipped 4 as older"
    expected = {
        '["1"]': ("2026-11-02T00:00:00.000000Z", {"rate": 0.2}),
        '["2"]': ("2026-11-03T00:00:00.000000Z", {"rate": 0.3}),
        '["3"]': ("2026-11-02T00:00:00.000000Z", {"rate": 0.7}),
    }
    assert stored(database, "merchant_stats") == expected
    # Replaying the file changes nothing (equal event times rewrite the same values).
    ingest(runner, second, view="merchant_stats")
    assert stored(database, "merchant_stats") == expected


def test_rows_outside_the_ttl_are_written(runner, database, ws, tmp_path):
    path = write_csv(
        tmp_path / "old.csv",
        ["user_id", "ts", "amount", "clicks", "tags"],
        [["u1", "2001-01-01T00:00:00Z", "1", "2", '["t"]']],
    )
    result = ingest(runner, path, "--timestamp-column", "ts", view="user_events")
    assert result.exit_code == 0, result.output
    assert stored(database, "user_events") == {
        '["u1"]': ("2001-01-01T00:00:00.000000Z", {"amount": 1, "clicks": "2", "tags": ["t"]})
    }


# ----------------------------------------------------------------------------- volume


def big_csv(path, rows):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["merchant_id", "timestamp", "rate"])
        for i in range(rows):
            writer.writerow([i, f"2026-11-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z", i / 7])
    return path


def test_one_hundred_thousand_rows(runner, database, ws, tmp_path):
    path = big_csv(tmp_path / "big.csv", 100_000)
    result = ingest(runner, path, view="merchant_stats")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "read 100000, written 100000, skipped 0 as older"
    assert "read 100,000 rows (100%)" in result.stderr  # plain progress lines off a terminal
    with database.read() as connection:
        count = connection.exec_driver_sql(
            "SELECT count(*), min(features::text), max(event_time) FROM online_values"
        ).one()
    assert count[0] == 100_000


def test_memory_does_not_grow_with_the_file(runner, ws, tmp_path):
    """The reader streams: peak Python memory for 40k rows stays near that for 4k rows."""
    peaks = []
    for rows in (4_000, 40_000):
        path = big_csv(tmp_path / f"{rows}.csv", rows)
        tracemalloc.start()
        result = ingest(runner, path, view="merchant_stats")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result.exit_code == 0, result.output
    assert peaks[1] < peaks[0] * 1.5 + 1_000_000, peaks


def test_progress_callback_sees_the_whole_file(runner, ws, tmp_path, database, monkeypatch):
    calls = []
    original = bulk.load_file

    def spy(*args, **kwargs):
        inner = kwargs["progress"]
        kwargs["progress"] = lambda *a: (calls.append(a), inner(*a))
        return original(*args, **kwargs)

    monkeypatch.setattr("app.ingest.cli.load_file", spy)
    path = big_csv(tmp_path / "p.csv", 10_000)
    ingest(runner, path, view="merchant_stats")
    size = path.stat().st_size
    assert calls[-1] == (10_000, size, size)
    assert [c[0] for c in calls[:2]] == [4096, 8192]


def test_a_large_load_refreshes_the_planner_statistics_itself(runner, database, ws, tmp_path):
    """No cold start: the load ANALYZEs what it wrote, in its own transaction, so the first
    reads are planned on the table as it now is (pg_stats rows are transactional; the view's id
    is new to this test, so only an ANALYZE after this load can know it)."""

    def analysed_view_ids():
        with database.read() as connection:
            values = connection.exec_driver_sql(
                "SELECT most_common_vals::text FROM pg_stats"
                " WHERE tablename = 'online_values' AND attname = 'feature_view_id'"
            ).scalar_one_or_none()
            return values or "", view_id(connection, "merchant_stats")

    small = ingest(runner, big_csv(tmp_path / "small.csv", 100), view="merchant_stats")
    assert small.exit_code == 0, small.output
    known, view = analysed_view_ids()
    assert str(view) not in known.strip("{}").split(",")  # small loads leave it to autovacuum
    result = ingest(runner, big_csv(tmp_path / "big.csv", 12_000), view="merchant_stats")
    assert result.exit_code == 0, result.output
    known, view = analysed_view_ids()
    assert str(view) in known.strip("{}").split(",")


def test_a_large_committed_load_leaves_the_store_vacuumed(
    committed_runner, clean_database, tmp_path
):
    """No cold start: after the commit the load VACUUMs the store, so its pages are already
    marked all-visible (and their hint bits set) when the first reads arrive, instead of each
    read settling a page and autovacuum starting on the same table meanwhile."""

    def manual_vacuums():
        """Counts only explicit VACUUMs (autovacuum has its own counter), so a concurrent
        autovacuum of the table cannot make this test pass or fail."""
        with clean_database.read() as connection:
            return connection.exec_driver_sql(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'online_values'"
            ).scalar_one()

    apply_definitions(committed_runner, tmp_path)
    before = manual_vacuums()
    small = ingest(committed_runner, big_csv(tmp_path / "small.csv", 100), view="merchant_stats")
    assert small.exit_code == 0, small.output
    assert manual_vacuums() == before  # small loads leave it to autovacuum
    result = ingest(committed_runner, big_csv(tmp_path / "big.csv", 12_000), view="merchant_stats")
    assert result.exit_code == 0, result.output
    assert manual_vacuums() == before + 1

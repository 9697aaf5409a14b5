"""Aggregate views under the emulator's controls, in-process: the clock moved by
`/_emulator/clock` (and `tectonite clock`) moves the windows of get-features and of file loads;
reset clears events and tiles; explain shows the window and the events behind each aggregate;
the feature-service cache applies to aggregate views as to plain ones."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from app.serving import clock
from tests.aggregation.test_serving import DEFINITIONS, TRANSFORMS, by_name, get, ingest, record
from tests.emulator.conftest import wait_for as poll_until
from tests.ingest import create_key
from tests.repo.helpers import write_repo

CACHED = DEFINITIONS.replace(
    "  - name: recent\n", "    cache_max_age: 2m\n  - name: recent\n", 1
).replace(
    "    features: [above_hourly, metrics, recent, lifetime_counts, profile]\n",
    "    features: [above_hourly, metrics, recent, lifetime_counts, profile]\n"
    "    enable_online_caching: true\n",
)


# The app's copy of the clock is reloaded after the change notice: poll for its effect.
wait_for = partial(poll_until, timeout=5.0)


@pytest.fixture
def keys(runner, tmp_path) -> Iterator[dict[str, str]]:
    clock.set_now(None)  # the emulator's clock, not the in-process override
    runner.ok("workspace", "create", "prod")
    path = write_repo(tmp_path / "repo", DEFINITIONS, TRANSFORMS)
    runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    yield {
        "editor": create_key(runner, "editor"),
        "consumer": create_key(runner, "consumer"),
        "admin": runner.ok("api-key", "create", "--description", "a", "--admin").stdout.strip(),
    }


def emulator(client, keys, path: str, body: dict[str, Any]) -> Any:
    response = client.post(
        f"/_emulator{path}",
        data=orjson.dumps(body),
        headers={"Authorization": f"Tecton-key {keys['admin']}"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json
    return response.json


def frozen_at(client, keys, moment: str) -> None:
    emulator(client, keys, "/clock", {"freezeAt": moment})
    wait_for(lambda: emulator(client, keys, "/explain", explain_body())["now"] == moment)


def explain_body(user: str = "u1") -> dict[str, Any]:
    return {"params": {"workspaceName": "prod", "featureServiceName": "svc",
                       "joinKeyMap": {"user_id": user},
                       "requestContextMap": {"amt": 1.0}}}  # fmt: skip


def test_the_emulator_clock_moves_windows_across_a_tile_boundary(client, keys):
    frozen_at(client, keys, "2024-07-29T13:59:00Z")
    response = ingest(client, keys["editor"], [
        record("2024-07-29T13:10:00Z", amt=4.0), record("2024-07-29T12:30:00Z", amt=1.5)
    ])  # fmt: skip
    assert response.status_code == 200, response.json
    features = by_name(get(client, keys["consumer"]))
    # At 13:59 the latest complete tile is 12:00's; 13:10 is in the tile still running.
    assert features["metrics.amt_sum_1h_1h"][:3] == (1.5, "PRESENT", "2024-07-29T12:00:00Z")
    # The continuous window (12:59, 13:59] holds 13:10 only.
    assert features["recent.amt_sum_1h_continuous"][:3] == (4.0, "PRESENT", "2024-07-29T13:59:00Z")

    emulator(client, keys, "/clock", {"advance": "1m"})  # across 14:00
    wait_for(lambda: by_name(get(client, keys["consumer"]))["metrics.amt_sum_1h_1h"][0] == 4.0)
    features = by_name(get(client, keys["consumer"]))
    assert features["metrics.amt_sum_1h_1h"][2] == "2024-07-29T13:00:00Z"
    assert features["metrics.qty_count_1d_1h"][0] == "2"

    emulator(client, keys, "/clock", {"advance": "11m"})  # 14:11: 13:10 leaves (13:11, 14:11]
    wait_for(
        lambda: (
            by_name(get(client, keys["consumer"]))["recent.amt_sum_1h_continuous"][:2]
            == (None, "MISSING_DATA")
        )
    )
    assert by_name(get(client, keys["consumer"]))["metrics.amt_sum_1h_1h"][0] == 4.0


def test_tectonite_ingest_follows_the_stored_clock(client, keys, runner, tmp_path):
    """`tectonite ingest` runs outside any server: its ttl check reads the stored clock."""
    runner.ok("clock", "freeze", "2024-07-29T13:05:00Z")
    path = tmp_path / "events.csv"
    path.write_text("user_id,amt,qty,merchant,ts\nu1,2.5,1,a,2024-07-29T12:01:00Z\n")
    assert (
        "read 1, written 1"
        in runner.ok("ingest", "-w", "prod", "--feature-view", "metrics", str(path)).stdout
    )  # with real time as now this event would be past the view's ttl
    wait_for(lambda: by_name(get(client, keys["consumer"]))["metrics.amt_sum_1h_1h"][0] == 2.5)
    runner.ok("clock", "advance", "30d")
    failed = runner.invoke("ingest", "-w", "prod", "--feature-view", "metrics", str(path))
    assert failed.exit_code == 1
    assert "line 2: timestamp value is outside of the serving TTL" in failed.stderr


def test_reset_clears_events_and_tiles(client, keys, connection):
    frozen_at(client, keys, "2024-07-29T13:05:00Z")
    response = ingest(client, keys["editor"], [record("2024-07-29T12:10:00Z")])
    assert response.status_code == 200
    assert by_name(get(client, keys["consumer"]))["metrics.qty_count_1d_1h"][0] == "1"
    # One event for each of the three aggregate views, each in one tile.
    result = emulator(client, keys, "/reset", {"workspace": "prod"})
    assert result["valuesDeleted"] == 6
    left = (
        "SELECT (SELECT count(*) FROM aggregation_events)"
        " + (SELECT count(*) FROM aggregation_tiles)"
    )
    assert connection.execute(text(left)).scalar() == 0
    features = by_name(get(client, keys["consumer"]))
    assert features["metrics.qty_count_1d_1h"][:2] == (None, "MISSING_DATA")
    assert features["recent.amt_sum_1h_continuous"][:2] == (None, "MISSING_DATA")


def test_explain_shows_the_window_and_events_behind_each_aggregate(client, keys):
    frozen_at(client, keys, "2024-07-29T13:05:00Z")
    response = ingest(client, keys["editor"], [
        record("2024-07-28T12:59:59Z", amt=100.0),  # before the 1d window
        record("2024-07-29T12:00:00Z", amt=3.0, merchant="c"),
        record("2024-07-29T12:30:00Z", amt=None, qty=None, merchant="b"),
        record("2024-07-29T13:01:00Z", amt=7.0),  # the tile still running
    ])  # fmt: skip
    assert response.status_code == 200, response.json
    explained = emulator(client, keys, "/explain", explain_body())
    served = get(client, keys["consumer"])
    assert [f["name"] for f in explained["features"]] == [
        f["name"] for f in served["metadata"]["features"]
    ]
    assert [f["value"] for f in explained["features"]] == served["result"]["features"]
    assert [f["status"] for f in explained["features"]] == [
        f["status"] for f in served["metadata"]["features"]
    ]
    items = {f["name"]: f for f in explained["features"]}
    total = items["metrics.amt_sum_1h_1h"]
    assert total["value"] == 3.0 and total["featureView"] == "metrics"
    assert total["aggregation"] == {
        "function": "sum",
        "column": "amt",
        "mode": "time_interval",
        "interval": "1h",
        "window": "1h",
        "windowStart": "2024-07-29T12:00:00Z",
        "windowEnd": "2024-07-29T13:00:00Z",
        "windowBounds": "[2024-07-29T12:00:00Z, 2024-07-29T13:00:00Z)",
        "effectiveTime": "2024-07-29T12:00:00Z",
        "tilesRead": 1,
        "eventCount": 2,
        "eventsWithValue": 1,
        "events": [  # newest first
            {"timestamp": "2024-07-29T12:30:00Z", "value": None},
            {"timestamp": "2024-07-29T12:00:00Z", "value": 3.0},
        ],
    }
    assert total["reason"] == (
        "sum of 1 value(s) of amt from 2 event(s) in [2024-07-29T12:00:00Z, "
        "2024-07-29T13:00:00Z); complete 1h tiles only (now 2024-07-29T13:05:00Z)"
    )
    offset = items["metrics.amt_mean_1d_1h_offset_1d"]["aggregation"]
    assert offset["window"] == "1d, offset -1d"
    assert offset["windowBounds"] == "[2024-07-27T13:00:00Z, 2024-07-28T13:00:00Z)"
    assert [e["value"] for e in offset["events"]] == [100.0]
    recent = items["recent.amt_sum_1h_continuous"]
    assert recent["value"] == 7.0  # (12:05, 13:05]: 12:30 (null) and 13:01
    assert recent["aggregation"]["windowBounds"] == ("(2024-07-29T12:05:00Z, 2024-07-29T13:05:00Z]")
    assert recent["aggregation"]["eventCount"] == 2
    assert "continuous window ending at now" in recent["reason"]
    lifetime = items["lifetime_counts.qty_count_lifetime_1d"]["aggregation"]
    assert lifetime["windowStart"] is None and lifetime["eventCount"] == 1  # 07-28's tile only
    realtime = items["above_hourly.above_hourly"]["inputs"]["metrics"]
    assert realtime["status"] == "PRESENT" and realtime["features"]["amt_sum_1h_1h"] == 3.0

    nobody = emulator(client, keys, "/explain", explain_body("nobody"))
    empty = {f["name"]: f for f in nobody["features"]}["metrics.qty_count_1d_1h"]
    assert (empty["value"], empty["status"]) == (None, "MISSING_DATA")
    assert empty["reason"].startswith("no value of qty in [2024-07-28T13:00:00Z, ")
    coerced = emulator(client, keys, "/explain", {
        "params": {**explain_body("nobody")["params"],
                   "requestOptions": {"coerceNullCountsToZero": True}}})  # fmt: skip
    count = {f["name"]: f for f in coerced["features"]}["metrics.qty_count_1d_1h"]
    assert (count["value"], count["status"]) == ("0", "PRESENT")


def test_the_feature_cache_applies_to_aggregate_views(client, keys, runner, tmp_path):
    path = write_repo(tmp_path / "cached", CACHED, TRANSFORMS)
    runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    frozen_at(client, keys, "2024-07-29T13:05:00Z")
    assert ingest(client, keys["editor"], [record("2024-07-29T12:10:00Z")]).status_code == 200
    first = by_name(get(client, keys["consumer"]))
    assert first["metrics.qty_count_1d_1h"][:3] == ("1", "PRESENT", "2024-07-29T12:00:00Z")
    assert first["recent.amt_sum_1h_continuous"][:2] == (1.0, "PRESENT")  # not cached
    assert ingest(client, keys["editor"], [record("2024-07-29T12:20:00Z")]).status_code == 200
    # Within the 2-minute max age the view's features come from the cache, all together.
    cached = by_name(get(client, keys["consumer"]))
    assert cached["metrics.qty_count_1d_1h"][:3] == ("1", "CACHED_PRESENT", None)
    assert cached["metrics.merchant_last_distinct_2_1d_1h"][1] == "CACHED_PRESENT"
    assert cached["recent.amt_sum_1h_continuous"][:2] == (2.0, "PRESENT")
    fresh = by_name(get(client, keys["consumer"], options={"readFromCache": False}))
    assert fresh["metrics.qty_count_1d_1h"][:2] == ("2", "PRESENT")
    emulator(client, keys, "/clock", {"advance": "3m"})
    wait_for(lambda: by_name(get(client, keys["consumer"]))["metrics.qty_count_1d_1h"][1] == (
        "PRESENT"))  # fmt: skip

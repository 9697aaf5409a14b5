"""Aggregate views end to end in-process: events in through the Stream Ingest API and
`tectonite ingest`, values out of get-features, batch and query-features at a pinned "now",
exactly as reference §4 predicts (worked examples, tile boundaries, empty windows, statuses,
effective times, coerceNullCountsToZero, continuous replacement, ttl record errors)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import text

from app.serving import clock
from tests.ingest import create_key
from tests.repo.helpers import write_repo
from tests.serving.test_get_features import round_trips

DEFINITIONS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
push_sources:
  - name: transactions
    timestamp_field: ts
    schema:
      - {name: user_id, type: String}
      - {name: amt, type: Float64}
      - {name: qty, type: Int64}
      - {name: merchant, type: String}
      - {name: ts, type: Timestamp}
feature_views:
  - name: metrics
    entities: [user]
    source: transactions
    aggregation_interval: 1h
    features:
      - {function: count, column: qty, window: 1d}
      - {function: sum, column: amt, window: 1h}
      - {function: sum, column: qty, window: 1d}
      - {function: mean, column: amt, window: {size: 1d, offset: -1d}}
      - {function: last_distinct(2), column: merchant, window: 1d}
      - {function: var_samp, column: amt, window: 1h}
      - {function: "approx_percentile(0.5)", column: amt, window: 1d, name: median_amt}
  - name: recent
    entities: [user]
    source: transactions
    stream_processing_mode: continuous
    features:
      - {function: sum, column: amt, window: 1h}
      - {function: count, column: qty, window: 10m}
  - name: lifetime_counts
    entities: [user]
    source: transactions
    aggregation_interval: 1d
    features:
      - {function: count, column: qty, window: lifetime}
  - name: profile
    entities: [user]
    features:
      - {name: segment, type: String}
realtime_feature_views:
  - name: above_hourly
    sources:
      - request: txn
        schema: [{name: amt, type: Float64}]
      - metrics
    features:
      - {name: above_hourly, type: Bool}
    transform: transforms.py:above
feature_services:
  - name: svc
    features: [above_hourly, metrics, recent, lifetime_counts, profile]
"""

TRANSFORMS = """
def above(txn, metrics):
    return {"above_hourly": txn["amt"] > (metrics["amt_sum_1h_1h"] or 0)}
"""

GET = "/api/v1/feature-service/get-features"
BATCH = "/api/v1/feature-service/get-features-batch"
QUERY = "/api/v1/feature-service/query-features"
ALL_METADATA = {
    "includeNames": True,
    "includeEffectiveTimes": True,
    "includeDataTypes": True,
    "includeServingStatus": True,
}


def at(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


@pytest.fixture
def now() -> Iterator[None]:
    yield
    clock.set_now(None)


@pytest.fixture
def keys(runner, tmp_path, now):
    runner.ok("workspace", "create", "prod")
    path = write_repo(tmp_path / "repo", DEFINITIONS, TRANSFORMS)
    runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    return create_key(runner, "editor"), create_key(runner, "consumer")


def record(ts: str, amt: float | None = 1.0, qty: int | None = 1, merchant="m", user="u1"):
    return {"user_id": user, "amt": amt, "qty": qty, "merchant": merchant, "ts": ts}


def ingest(client, key, records):
    body = {
        "workspace_name": "prod",
        "dry_run": False,
        "records": {"transactions": [{"record": r} for r in records]},
    }
    headers = {"Authorization": f"Tecton-key {key}"}
    return client.post("/ingest", data=orjson.dumps(body), headers=headers)


def get(client, key, user="u1", *, amt=1.0, options=None, path=GET):
    params = {
        "workspaceName": "prod",
        "featureServiceName": "svc",
        "joinKeyMap": {"user_id": user},
        "requestContextMap": {"amt": amt},
        "metadataOptions": ALL_METADATA,
    }
    if options:
        params["requestOptions"] = options
    response = client.post(
        path, data=orjson.dumps({"params": params}), headers={"Authorization": f"Tecton-key {key}"}
    )
    assert response.status_code == 200, response.json
    return response.json


def by_name(body) -> dict[str, tuple]:
    """feature name → (value, status, effectiveTime, dataType)."""
    return {
        f["name"]: (v, f.get("status"), f.get("effectiveTime"), f["dataType"])
        for v, f in zip(body["result"]["features"], body["metadata"]["features"], strict=True)
    }


def test_names_order_and_types(client, keys):
    _, consumer = keys
    clock.set_now(at("2024-07-29T13:05:00"))
    names = [f["name"] for f in get(client, consumer)["metadata"]["features"]]
    assert names == [
        "above_hourly.above_hourly",
        "lifetime_counts.qty_count_lifetime_1d",
        "metrics.amt_mean_1d_1h_offset_1d",
        "metrics.amt_sum_1h_1h",
        "metrics.amt_var_samp_1h_1h",
        "metrics.median_amt",
        "metrics.merchant_last_distinct_2_1d_1h",
        "metrics.qty_count_1d_1h",
        "metrics.qty_sum_1d_1h",
        "profile.segment",
        "recent.amt_sum_1h_continuous",
        "recent.qty_count_10m_continuous",
    ]
    features = by_name(get(client, consumer))
    assert features["metrics.qty_count_1d_1h"][3] == {"type": "int64"}
    assert features["metrics.amt_mean_1d_1h_offset_1d"][3] == {"type": "float64"}
    assert features["metrics.merchant_last_distinct_2_1d_1h"][3] == {
        "type": "array",
        "elementType": {"type": "string"},
    }


def test_worked_example_time_interval_window_and_tile_boundaries(client, keys):
    """Reference §4.3 example 1: at 13:05 the 1d window is [07-28T13:00, 07-29T13:00)."""
    editor, consumer = keys
    clock.set_now(at("2024-07-29T13:05:00"))
    response = ingest(client, editor, [
        record("2024-07-28T12:59:59.999Z", amt=100.0, merchant="a"),  # before the window
        record("2024-07-28T13:00:00Z", amt=2.0, merchant="b"),  # on the window's start: in
        record("2024-07-29T12:00:00Z", amt=3.0, merchant="c"),  # the last complete tile
        record("2024-07-29T12:59:59.999Z", amt=5.0, qty=None, merchant="b"),  # in; qty null
        record("2024-07-29T13:00:00Z", amt=7.0, merchant="d"),  # the current tile: not yet
    ])  # fmt: skip
    assert response.status_code == 200, response.json

    features = by_name(get(client, consumer, amt=9.0))
    tile = "2024-07-29T12:00:00Z"  # effectiveTime: the start of the latest complete tile
    assert features["metrics.qty_count_1d_1h"][:3] == ("2", "PRESENT", tile)  # nulls not counted
    assert features["metrics.qty_sum_1d_1h"][:2] == ("2", "PRESENT")
    assert features["metrics.amt_sum_1h_1h"][:3] == (8, "PRESENT", tile)
    assert features["metrics.amt_var_samp_1h_1h"][0] == 2.0  # (3, 5): ((9+25) - 64/2) / 1
    assert features["metrics.merchant_last_distinct_2_1d_1h"][0] == ["c", "b"]  # latest last
    assert features["metrics.median_amt"][0] in (3, 5)  # exact for small inputs: a middle value
    # offset -1d: [07-27T13:00, 07-28T13:00) holds only the 12:59:59.999 event
    assert features["metrics.amt_mean_1d_1h_offset_1d"][:2] == (100, "PRESENT")
    assert features["lifetime_counts.qty_count_lifetime_1d"][:3] == (
        "2",
        "PRESENT",
        "2024-07-28T00:00:00Z",
    )  # 1d tiles: only 07-28's are complete
    assert features["above_hourly.above_hourly"][:2] == (True, "PRESENT")  # 9 > 8

    # The frozen clock crosses the 14:00 boundary: 13:00's tile completes, 13:00 on 07-28 leaves.
    clock.set_now(at("2024-07-29T13:59:59.999999"))
    assert by_name(get(client, consumer))["metrics.qty_count_1d_1h"][0] == "2"
    clock.set_now(at("2024-07-29T14:00:00"))
    features = by_name(get(client, consumer))
    assert features["metrics.qty_count_1d_1h"][:3] == ("2", "PRESENT", "2024-07-29T13:00:00Z")
    assert features["metrics.amt_sum_1h_1h"][0] == 7
    assert features["metrics.amt_var_samp_1h_1h"][:2] == (None, "PRESENT")  # one value
    assert features["metrics.merchant_last_distinct_2_1d_1h"][0] == ["b", "d"]


def test_empty_windows_and_coerce_null_counts_to_zero(client, keys):
    editor, consumer = keys
    clock.set_now(at("2024-07-29T13:05:00"))
    assert ingest(client, editor, [record("2024-07-29T12:10:00Z", user="u1")]).status_code == 200

    features = by_name(get(client, consumer, user="nobody"))
    assert features["metrics.qty_count_1d_1h"][:3] == (None, "MISSING_DATA", "2024-07-29T12:00:00Z")
    assert features["metrics.amt_sum_1h_1h"][:2] == (None, "MISSING_DATA")
    assert features["metrics.merchant_last_distinct_2_1d_1h"][:2] == (None, "MISSING_DATA")
    assert features["above_hourly.above_hourly"][0] is True  # the transform saw None

    coerced = by_name(
        get(client, consumer, user="nobody", options={"coerceNullCountsToZero": True})
    )
    assert coerced["metrics.qty_count_1d_1h"][:2] == ("0", "PRESENT")
    assert coerced["recent.qty_count_10m_continuous"][:2] == ("0", "PRESENT")
    assert coerced["metrics.amt_sum_1h_1h"][:2] == (None, "MISSING_DATA")  # counts only

    # A window whose events all have a null value: count 0 (not empty), sum null.
    clock.set_now(at("2024-07-29T15:00:00"))
    response = ingest(client, editor, [record("2024-07-29T14:30:00Z", amt=None, qty=None)])
    assert response.status_code == 200
    features = by_name(get(client, consumer))
    assert features["metrics.amt_sum_1h_1h"][:2] == (None, "MISSING_DATA")


def test_continuous_window_edges_replacement_and_effective_time(client, keys):
    """Reference §4.3 example 2: at 13:05:20.5 the window is (12:05:20.5, 13:05:20.5]."""
    editor, consumer = keys
    clock.set_now(at("2024-07-29T13:05:20.5"))
    response = ingest(client, editor, [
        record("2024-07-29T12:05:20.500Z", amt=1000.0),  # the open end: out
        record("2024-07-29T12:05:20.501Z", amt=1.0),
        record("2024-07-29T12:59:00Z", amt=2.0),
        record("2024-07-29T13:05:20.500Z", amt=4.0),  # the closed end: in
        record("2024-07-29T13:05:20.501Z", amt=8000.0),  # after now: out
    ])  # fmt: skip
    assert response.status_code == 200, response.json
    features = by_name(get(client, consumer))
    assert features["recent.amt_sum_1h_continuous"][:3] == (
        7,
        "PRESENT",
        "2024-07-29T13:05:20.500Z",
    )
    assert features["recent.qty_count_10m_continuous"][0] == "2"  # 12:59 and 13:05:20.5

    # Same keys and timestamp: the later record replaces the earlier (continuous mode only).
    assert ingest(client, editor, [record("2024-07-29T12:59:00Z", amt=20.0)]).status_code == 200
    assert by_name(get(client, consumer))["recent.amt_sum_1h_continuous"][0] == 25
    # ...while the time_interval view counts both events of 12:59.
    clock.set_now(at("2024-07-29T14:00:00"))
    features = by_name(get(client, consumer))
    assert features["metrics.qty_count_1d_1h"][0] == "6"
    assert features["recent.amt_sum_1h_continuous"][0] == 8004  # (13:00, 14:00]


def test_events_past_the_implicit_ttl_are_record_errors(client, keys, connection):
    editor, _ = keys
    clock.set_now(at("2024-07-29T13:05:00"))
    # recent: ttl = 1h + 7d (continuous: no interval); metrics: 1h + (1d + offset 1d) + 7d.
    response = ingest(client, editor, [
        record("2024-07-21T12:00:00Z"), record("2024-07-29T12:00:00Z")
    ])  # fmt: skip
    assert response.status_code == 400
    assert response.json["recordErrors"] == [
        {
            "featureViewName": "recent",
            "pushSourceName": "transactions",
            "errorType": "TectonObjectValidationError",
            "errorMessage": "timestamp value is outside of the serving TTL defined for "
            "Feature View recent",
        }
    ]
    assert connection.execute(text("SELECT count(*) FROM aggregation_events")).scalar() == 0
    assert connection.execute(text("SELECT count(*) FROM aggregation_tiles")).scalar() == 0


def test_one_request_touches_each_tile_once(client, keys, connection):
    editor, _ = keys
    clock.set_now(at("2024-07-29T13:05:00"))
    # 100 records at 60 distinct instants of two hours.
    records = [record(f"2024-07-29T1{i % 2}:{i % 60:02d}:00Z", amt=float(i)) for i in range(100)]
    assert ingest(client, editor, records).status_code == 200
    # Tiles: 1h (metrics), 1d (lifetime_counts), 1m (recent: continuous, smallest window 10m).
    tiles = connection.execute(
        text(
            "SELECT v.name, count(*) FROM aggregation_tiles t JOIN feature_views v "
            "ON v.id = t.feature_view_id GROUP BY v.name ORDER BY v.name"
        )
    ).all()
    assert tiles == [("lifetime_counts", 1), ("metrics", 2), ("recent", 60)]
    # Continuous mode keeps one event per key and instant: the later record of each pair.
    events = connection.execute(text("SELECT count(*) FROM aggregation_events")).scalar()
    assert events == 100 + 100 + 60


def test_batch_and_query_features(client, keys):
    editor, consumer = keys
    clock.set_now(at("2024-07-29T13:05:00"))
    response = ingest(client, editor, [
        record("2024-07-29T12:10:00Z", user="u1", amt=1.5),
        record("2024-07-29T12:20:00Z", user="u2", amt=2.5),
        record("2024-07-29T12:30:00Z", user="u2", amt=3.0),
    ])  # fmt: skip
    assert response.status_code == 200
    headers = {"Authorization": f"Tecton-key {consumer}"}
    rows = [
        {"joinKeyMap": {"user_id": u}, "requestContextMap": {"amt": 0.0}}
        for u in ("u1", "u2", "u3")
    ]
    params = {"workspaceName": "prod", "featureServiceName": "svc", "requestData": rows,
              "metadataOptions": {"includeNames": True}}  # fmt: skip
    body = client.post(BATCH, json={"params": params}, headers=headers).json
    names = [f["name"] for f in body["metadata"]["features"]]
    column = names.index("metrics.amt_sum_1h_1h")
    assert [r["features"][column] for r in body["result"]] == [1.5, 5.5, None]

    params = {"workspaceName": "prod", "featureServiceName": "svc", "joinKeyMap": {},
              "requestContextMap": {"amt": 0.0}}  # fmt: skip
    body = client.post(QUERY, json={"params": params}, headers=headers).json
    users = sorted(r["joinKeys"][0] for r in body["results"])
    assert users == ["u1", "u2"]


def test_events_file_through_tectonite_ingest(client, keys, runner, tmp_path):
    _, consumer = keys
    clock.set_now(at("2024-07-29T13:05:00"))
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,amt,qty,merchant,ts\n"
        "u1,1.25,1,a,2024-07-29T12:01:00Z\n"
        "u1,2.5,2,b,2024-07-29T12:02:00Z\n"
        "u1,,3,,2024-07-29T12:03:00Z\n"
    )
    result = runner.ok("ingest", "-w", "prod", "--feature-view", "metrics", str(path))
    assert "read 3, written 3" in result.stdout
    features = by_name(get(client, consumer))
    assert features["metrics.amt_sum_1h_1h"][0] == 3.75
    assert features["metrics.qty_count_1d_1h"][0] == "3"
    assert features["metrics.merchant_last_distinct_2_1d_1h"][0] == ["a", "b"]
    assert features["recent.amt_sum_1h_continuous"][0] is None  # loaded into metrics only

    old = tmp_path / "old.csv"
    old.write_text("user_id,amt,qty,merchant,ts\nu1,1,1,a,2024-07-01T00:00:00Z\nu1,x,1,a,\n")
    failed = runner.invoke("ingest", "-w", "prod", "--feature-view", "metrics", str(old))
    assert failed.exit_code == 1
    assert "line 2: timestamp value is outside of the serving TTL" in failed.stderr
    assert "line 3: column `ts`" in failed.stderr or "line 3: column `amt`" in failed.stderr
    assert by_name(get(client, consumer))["metrics.qty_count_1d_1h"][0] == "3"


def test_one_round_trip_for_a_service_mixing_aggregate_and_plain_views(client, keys, connection):
    editor, consumer = keys
    clock.set_now(at("2024-07-29T13:05:20"))
    assert ingest(client, editor, [record("2024-07-29T12:10:00Z")]).status_code == 200
    get(client, consumer)  # warm the per-process caches (definitions, key)
    trips, sent = round_trips(connection, lambda: get(client, consumer))
    assert trips == 1, sent
    assert "Query" not in sent


def test_official_client_against_a_real_server(committed_runner, clean_database, tmp_path, server):
    """Through a real server and tecton-client 0.4, with real time as now: events a few hours
    old sit in complete tiles inside the 1-day windows whatever the minute the test runs."""
    import httpx
    from tecton_client import MetadataOptions, TectonClient

    committed_runner.ok("workspace", "create", "prod")
    path = write_repo(tmp_path / "repo", DEFINITIONS, TRANSFORMS)
    committed_runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    editor = create_key(committed_runner, "editor")
    consumer = create_key(committed_runner, "consumer")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    stamps = [
        (hour - timedelta(hours=h, minutes=-5)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (3, 2)
    ]
    body = {"workspace_name": "prod", "dry_run": False, "records": {"transactions": [
        {"record": record(stamps[0], amt=1.25, merchant="a")},
        {"record": record(stamps[1], amt=2.5, merchant="b")}]}}  # fmt: skip
    with httpx.Client() as http:
        response = http.post(
            f"{server.base_url}/ingest",
            json=body,
            headers={"Authorization": f"Tecton-key {editor}"},
        )
        assert response.status_code == 200, response.text
        client = TectonClient(server.base_url, consumer, default_workspace_name="prod", client=http)
        result = client.get_features(
            feature_service_name="svc",
            join_key_map={"user_id": "u1"},
            request_context_map={"amt": 1.0},
            metadata_options=MetadataOptions(include_names=True, include_data_types=True),
        )
    features = result.get_features_dict()
    assert features["metrics.qty_count_1d_1h"] == 2  # an int64 string, decoded by the client
    assert features["metrics.qty_sum_1d_1h"] == 2
    assert features["metrics.merchant_last_distinct_2_1d_1h"] == ["a", "b"]
    assert features["lifetime_counts.qty_count_lifetime_1d"] in (None, 2)  # 1d tiles
    assert features["recent.amt_sum_1h_continuous"] is None  # both older than an hour
    assert features["profile.segment"] is None

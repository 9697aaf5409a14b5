"""`GET /metrics`: what is counted, with bounded labels and no secrets; request ids."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.db import DATABASE
from auth.throttle import FAILED_ATTEMPTS_LIMIT
from tests.emulator.conftest import wait_for
from tests.ingest import apply_definitions, create_key
from tests.repo.helpers import MINIMAL, write_repo
from tests.serving.conftest import SERVICE
from tests.serving.helpers import put_values
from tests.serving.test_caching import CACHED

GET = "/api/v1/feature-service/get-features"
BODY = {
    "params": {
        "workspaceName": "prod",
        "featureServiceName": SERVICE,
        "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
        "requestContextMap": {"amt": 100},
    }
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_requests_statuses_and_store_reads_are_counted(client, auth, consumer_key):
    for _ in range(3):
        assert client.post(GET, json=BODY, headers=auth).status_code == 200
    text = scrape(client)
    found = samples(text)
    labels = {"endpoint": GET, "workspace": "prod", "status": "200"}
    assert value(found, "tectonite_requests_total", **labels) == 3
    assert value(found, "tectonite_request_duration_seconds_count", endpoint=GET) == 3
    assert value(found, "tectonite_store_read_duration_seconds_count") == 3
    # examples/fraud: the realtime feature and fresh views are PRESENT, one stale view is not.
    assert value(found, "tectonite_feature_statuses_total", workspace="prod", status="PRESENT") > 0
    assert value(found, "tectonite_feature_statuses_total", workspace="prod", status="MISSING_DATA")
    assert consumer_key not in text and "user_1" not in text and 'm1"' not in text


def test_unknown_paths_and_workspaces_do_not_grow_the_labels(client, auth):
    for path in ("/nope", "/nope/1", "/api/v1/unknown/x"):
        assert client.get(path).status_code == 404
    for workspace in ("ghost_1", "ghost_2"):
        body = {"params": {**BODY["params"], "workspaceName": workspace}}
        assert client.post(GET, json=body, headers=auth).status_code in (403, 404)
    found = samples(scrape(client))
    requests = {k[1]: v for k, v in found.items() if k[0] == "tectonite_requests_total"}
    endpoints = {dict(labels)["endpoint"] for labels in requests}
    workspaces = {dict(labels)["workspace"] for labels in requests}
    assert (
        value(found, "tectonite_requests_total", endpoint="unmatched", workspace="", status="404")
        == 3
    )
    assert endpoints <= {"unmatched", GET, "/metrics"}
    assert workspaces == {""}


def test_authentication_failures_are_counted(client):
    assert client.post(GET, json=BODY).status_code == 401
    assert (
        client.post(GET, json=BODY, headers={"Authorization": "Tecton-key nope"}).status_code == 401
    )
    assert value(samples(scrape(client)), "tectonite_auth_failures_total") == 2


def test_throttled_clients_are_counted(client):
    wrong = {"Authorization": "Tecton-key nope"}
    statuses = [client.post(GET, json=BODY, headers=wrong).status_code
                for _ in range(FAILED_ATTEMPTS_LIMIT + 2)]  # fmt: skip
    assert statuses == [401] * FAILED_ATTEMPTS_LIMIT + [429, 429]
    found = samples(scrape(client))
    assert value(found, "tectonite_auth_failures_total") == FAILED_ATTEMPTS_LIMIT
    assert value(found, "tectonite_auth_throttled_total") == 2


def test_pool_connections_in_use_follow_the_pool(app, client):
    engine = DATABASE.get(app).engine
    with app.app_context():
        held = engine.connect()  # a checkout, as a request's session makes one
    try:
        during = value(samples(scrape(client)), "tectonite_db_pool_connections_in_use")
        assert during == engine.pool.checkedout() >= 2  # this one and the test's own
    finally:
        with app.app_context():
            held.close()
    after = value(samples(scrape(client)), "tectonite_db_pool_connections_in_use")
    assert after == during - 1


def test_cache_hits_and_misses_are_counted(client, runner, database, tmp_path):
    runner.ok("workspace", "create", "c")
    runner.ok("apply", "-f", str(write_repo(tmp_path, CACHED)), "--workspace", "c", "--yes")
    put_values(database, "c", "user_stats", ["u1"], datetime(2026, 1, 1, tzinfo=UTC),
               {"clicks": 1, "score": 0.5})  # fmt: skip
    key = runner.ok("api-key", "create", "--description", "k", "--workspace", "c").stdout.strip()

    def get(user_id, **request_options):
        body = {"params": {"workspaceName": "c", "featureServiceName": "svc",
                           "joinKeyMap": {"user_id": user_id},
                           "requestOptions": request_options}}  # fmt: skip
        response = client.post(GET, json=body, headers={"Authorization": f"Tecton-key {key}"})
        assert response.status_code == 200

    get("u1")  # miss, then stored
    get("u1")  # hit
    get("u1")  # hit
    get("u2")  # miss (a missing entity is cached too, but not read from the cache yet)
    get("u1", readFromCache=False)  # no lookup at all
    found = samples(scrape(client))
    assert value(found, "tectonite_feature_cache_lookups_total", workspace="c", result="hit") == 2
    assert value(found, "tectonite_feature_cache_lookups_total", workspace="c", result="miss") == 2
    statuses = {"workspace": "c", "status": "CACHED_PRESENT"}
    assert value(found, "tectonite_feature_statuses_total", **statuses) == 4  # 2 hits x 2 features


def test_ingest_records_are_counted_by_outcome(client, runner, tmp_path):
    apply_definitions(runner, tmp_path)
    key = create_key(runner, "editor")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def ingest(records, dry_run=False):
        body = {"workspace_name": "prod", "dry_run": dry_run,
                "records": {"events": [{"record": r} for r in records]}}  # fmt: skip
        return client.post("/ingest", json=body, headers={"Authorization": f"Tecton-key {key}"})

    good = {"user_id": "u1", "merchant_id": "42", "amount": 1.5, "clicks": 3, "tags": [], "ts": now}
    assert ingest([good, {**good, "user_id": "u2"}]).status_code == 200
    assert ingest([good], dry_run=True).status_code == 200
    assert ingest([good, {**good, "amount": "lots"}]).status_code == 400
    found = samples(scrape(client))
    for outcome, count in (("written", 2), ("dry_run", 1), ("rejected", 2)):
        labels = {"workspace": "prod", "outcome": outcome}
        assert value(found, "tectonite_ingest_records_total", **labels) == count, outcome


EVENTS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
push_sources:
  - name: clicks
    timestamp_field: ts
    schema:
      - {name: user_id, type: String}
      - {name: n, type: Int64}
      - {name: ts, type: Timestamp}
feature_views:
  - name: click_sums
    entities: [user]
    source: clicks
    aggregation_interval: 1h
    features:
      - {function: sum, column: n, window: 1d}
  - name: click_counts
    entities: [user]
    source: clicks
    aggregation_interval: 1d
    features:
      - {function: count, column: n, window: lifetime}
  - name: last_click
    entities: [user]
    source: clicks
    features:
      - {name: n, type: Int64}
feature_services:
  - name: svc
    features: [click_sums, click_counts, last_click]
"""


def test_ingest_events_are_counted_per_aggregate_view(client, runner, tmp_path):
    """Each record is one event of every aggregate view its push source feeds (not of the
    plain view `last_click`)."""
    runner.ok("workspace", "create", "ev")
    runner.ok("apply", "-f", str(write_repo(tmp_path, EVENTS)), "--workspace", "ev", "--yes")
    key = create_key(runner, "editor", "ev")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def ingest(records, dry_run=False):
        body = {"workspaceName": "ev", "dryRun": dry_run,
                "records": {"clicks": [{"record": r} for r in records]}}  # fmt: skip
        return client.post("/v2/ingest", json=body, headers={"Authorization": f"Tecton-key {key}"})

    good = {"user_id": "u1", "n": 2, "ts": now}
    assert ingest([good, good, {**good, "user_id": "u2"}]).status_code == 200
    assert ingest([good], dry_run=True).status_code == 200
    assert ingest([good, {**good, "n": "two"}]).status_code == 400
    found = samples(scrape(client))
    for outcome, count in (("written", 3), ("dry_run", 1), ("rejected", 2)):
        for view in ("click_sums", "click_counts"):
            labels = {"workspace": "ev", "feature_view": view, "outcome": outcome}
            assert value(found, "tectonite_ingest_events_total", **labels) == count, labels
        labels = {"workspace": "ev", "outcome": outcome}
        assert value(found, "tectonite_ingest_records_total", **labels) == count
    views = {dict(k[1])["feature_view"] for k in found if k[0] == "tectonite_ingest_events_total"}
    assert views == {"click_sums", "click_counts"}


def test_realtime_transform_errors_are_counted(client, runner, tmp_path):
    runner.ok("workspace", "create", "rt")
    text = MINIMAL.replace("features: [user_stats]", "features: [user_stats, boom]") + (
        "realtime_feature_views:\n"
        "  - name: boom\n"
        "    sources: [{request: req, schema: [{name: x, type: Int64}]}]\n"
        "    features: [{name: out, type: Int64}]\n"
        "    transform: transforms.py:boom\n"
    )
    transforms = "def boom(req):\n    return {'out': 10 // req['x']}\n"
    runner.ok(
        "apply", "-f", str(write_repo(tmp_path, text, transforms)), "--workspace", "rt", "--yes"
    )
    key = runner.ok("api-key", "create", "--description", "k", "--workspace", "rt").stdout.strip()
    for x in ("0", "5", "0"):
        params = {"workspaceName": "rt", "featureServiceName": "svc",
                  "joinKeyMap": {"user_id": "u"}, "requestContextMap": {"x": x}}  # fmt: skip
        body = {"params": params}
        response = client.post(GET, json=body, headers={"Authorization": f"Tecton-key {key}"})
        assert response.status_code == (400 if x == "0" else 200)
    found = samples(scrape(client))
    assert value(found, "tectonite_realtime_transform_errors_total", workspace="rt") == 2


def test_metrics_off_removes_the_endpoint(settings, database):
    app = create_app(settings.replace(metrics=False), database=database)
    response = app.test_client().get("/metrics")
    assert response.status_code == 404
    assert response.json == {"error": "Not Found", "code": 5, "message": "Not Found"}


def test_request_ids_are_returned_accepted_and_validated(client):
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert generated and generated != client.get("/healthz").headers["X-Request-Id"]
    supplied = client.get("/healthz", headers={"X-Request-Id": "trace-42.a_b"})
    assert supplied.headers["X-Request-Id"] == "trace-42.a_b"
    for bad in ("x" * 65, "has space", "semi;colon", "é"):
        echoed = client.get("/nope", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert echoed != bad and len(echoed) <= 64


# --------------------------------------------------------------------------- real processes


def _scrape(base_url: str) -> dict:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(response.read().decode())


def _total(found, endpoint: str) -> float:
    return sum(
        v for (name, labels), v in found.items()
        if name == "tectonite_requests_total" and dict(labels)["endpoint"] == endpoint
    )  # fmt: skip


def test_every_worker_process_is_counted(live):
    server, key = live
    before = _total(_scrape(server.base_url), GET)
    count = 40
    data = orjson.dumps(BODY)
    for _ in range(count):  # a new connection each: gunicorn spreads them over its workers
        request = urllib.request.Request(
            f"{server.api_url}/v1/feature-service/get-features",
            data=data,
            headers={"Authorization": f"Tecton-key {key}", "Connection": "close"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    # Each worker hands its tallies to the shared files within a second (the scraped one at
    # once), so `before` may lack a moment of earlier tests' requests: at least `count` more.
    # Once all are in, every scrape reports the same merged total, whichever worker answers.
    def settled():
        totals = [_total(_scrape(server.base_url), GET) for _ in range(6)]
        return len(set(totals)) == 1 and totals[0] - before >= count

    wait_for(settled, timeout=10)
    found = _scrape(server.base_url)
    assert value(found, "tectonite_change_feed_age_seconds") < 10
    assert value(found, "tectonite_definitions_age_seconds") > 0
    assert ("tectonite_db_pool_connections_in_use", ()) in found


def test_metrics_off_on_a_real_server_with_json_logs(database_url, settings):
    """TECTONITE_METRICS=off: /metrics is a 404 there; LOG_FORMAT=json: its access line is a
    JSON object (the request id the client sent included)."""
    from tests.conftest import start_server

    proc = start_server(
        {
            "DATABASE_URL": database_url,
            "TECTONITE_METRICS": "off",
            "LOG_FORMAT": "json",
            "WEB_CONCURRENCY": "1",
            "TECTONITE_SECRET": settings.secret or "",
        }
    )
    try:
        request = urllib.request.Request(
            f"{proc.base_url}/metrics", headers={"X-Request-Id": "json-line-1"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10).close()
        assert refused.value.code == 404
        assert orjson.loads(refused.value.read())["code"] == 5

        def access_line() -> dict | None:
            for line in list(proc.output):
                if '"tectonite.access"' in line and "json-line-1" in line:
                    return orjson.loads(line)
            return None

        line = wait_for(access_line)
        assert line["request_id"] == "json-line-1" and line["status"] == 404
        assert line["endpoint"] == "unmatched" and line["path"] == "/metrics"
        assert line["method"] == "GET" and line["key_id"] is None
    finally:
        proc.stop()


def test_pending_tallies_reach_prometheus_exactly_as_direct_recording_would():
    """Bucket edges included: a value equal to a bound is in that bound's bucket."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from app.observability.metrics import STORE_BUCKETS, PendingTallies

    registry = CollectorRegistry()
    direct = Histogram("direct", "d", buckets=STORE_BUCKETS, registry=registry)
    tallied = Histogram("tallied", "t", buckets=STORE_BUCKETS, registry=registry)
    direct_count = Counter("direct_n", "d", registry=registry)
    tallied_count = Counter("tallied_n", "t", registry=registry)
    pending = PendingTallies()
    values = [0.0, 0.00005, 0.0001, 0.00011, 0.001, 0.0049, 0.25, 1, 2, 2.5, 60]
    for seconds in values:
        direct.observe(seconds)
        pending.observe(tallied, seconds)
        direct_count.inc(3)
        pending.count(tallied_count, 3)
    assert registry.get_sample_value("tallied_count") is None or (
        registry.get_sample_value("tallied_count") == 0
    )
    pending.flush()

    def samples(name):
        return sorted(
            (s.name.replace(name, ""), tuple(sorted(s.labels.items())), s.value)
            for family in registry.collect()
            if family.name == name
            for s in family.samples
            if not s.name.endswith("_created")
        )

    assert samples("tallied") == samples("direct")
    assert samples("tallied_n") == samples("direct_n")
    assert registry.get_sample_value("tallied_bucket", {"le": "0.0001"}) == 3

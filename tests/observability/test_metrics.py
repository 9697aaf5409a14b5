"""`GET /metrics`: what is counted, with bounded labels and no secrets; request ids; access log."""

from __future__ import annotations

import logging
import time
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.logs import JsonFormatter
from tests.serving.conftest import SERVICE

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


def test_cache_hits_and_misses_are_counted(client, auth, runner, tmp_path):
    # examples/fraud caches nothing: every lookup is neither a hit nor a miss.
    assert client.post(GET, json=BODY, headers=auth).status_code == 200
    found = samples(scrape(client))
    assert not any(k[0] == "tectonite_feature_cache_lookups_total" for k in found)


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


def test_access_log_line_has_the_fields_and_never_the_key(client, auth, consumer_key, caplog):
    with caplog.at_level(logging.INFO, logger="tectonite.access"):
        response = client.post(GET, json=BODY, headers={**auth, "X-Request-Id": "req-1"})
    assert response.status_code == 200
    (record,) = [r for r in caplog.records if r.name == "tectonite.access"]
    line = orjson.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1"
    assert line["endpoint"] == GET and line["method"] == "POST" and line["status"] == 200
    assert line["workspace"] == "prod" and line["service"] == SERVICE
    assert line["key_id"] == consumer_key.split("_")[1]  # the key's public id part
    assert line["duration_ms"] > 0
    secret = consumer_key.rsplit("_", 1)[1]
    assert secret not in record.getMessage() and secret not in str(line)
    assert "user_1" not in str(line)


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
    # Each scrape may land on either worker; every one of them reports the merged total.
    for _ in range(6):
        found = _scrape(server.base_url)
        assert _total(found, GET) - before == count
    assert value(found, "tectonite_change_feed_age_seconds") < 10
    assert value(found, "tectonite_definitions_age_seconds") > 0
    assert ("tectonite_db_pool_connections_in_use", ()) in found


@pytest.mark.parametrize("setting", ["off"])
def test_metrics_off_on_a_real_server(setting, database_url, settings):
    from tests.conftest import start_server

    proc = start_server(
        {
            "DATABASE_URL": database_url,
            "TECTONITE_METRICS": setting,
            "WEB_CONCURRENCY": "1",
            "TECTONITE_SECRET": settings.secret or "",
        }
    )
    try:
        started = time.monotonic()
        try:
            urllib.request.urlopen(f"{proc.base_url}/metrics", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            assert orjson.loads(exc.read())["code"] == 5
        else:
            raise AssertionError("/metrics answered with TECTONITE_METRICS=off")
        assert time.monotonic() - started < 10
    finally:
        proc.stop()

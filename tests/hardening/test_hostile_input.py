"""Hostile and malformed input found by a hostile test run: each answers 4xx JSON, never a 500."""

from __future__ import annotations

import orjson
import pytest

from tests.serving.conftest import SERVICE, seed_fraud

GET_FEATURES = "/api/v1/feature-service/get-features"
METADATA = "/api/v1/feature-service/metadata"
STATE = "/api/v1/feature-service/get-feature-service-state"


@pytest.fixture
def admin_auth(runner, database, tmp_path):
    seed_fraud(runner, database, tmp_path)
    key = runner.ok("api-key", "create", "--description", "admin", "--admin").stdout.strip()
    return {"Authorization": f"Tecton-key {key}"}


def assert_bad_request(response, *, containing: str = "") -> dict:
    assert response.status_code == 400, (response.status_code, response.data[:300])
    assert response.mimetype == "application/json"
    body = response.get_json()
    message = body.get("message") or body.get("requestError", {}).get("errorMessage", "")
    assert containing in message, message
    return body


def params(**overrides):
    base = {
        "workspaceName": "prod",
        "featureServiceName": SERVICE,
        "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
        "requestContextMap": {"amt": 10.0},
    }
    return {"params": {**base, **overrides}}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (GET_FEATURES, params(featureServiceName="x\u0000")),
        (GET_FEATURES, params(workspaceName="pr\u0000od")),
        (METADATA, params(featureServiceName="x\u0000")),
        (
            STATE,
            {"featureServiceLocator": {"featureServiceName": "x\u0000", "workspaceName": "prod"}},
        ),
        ("/api/v1/feature-service/query-features", params(featureServiceName="\u0000")),
    ],
)
def test_a_nul_character_in_a_name_is_a_bad_request(client, admin_auth, path, body):
    assert_bad_request(
        client.post(path, data=orjson.dumps(body), headers=admin_auth), containing=""
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/workspaces/prod/feature-services/%00/metadata",
        "/api/v2/workspaces/%00/feature-services/x/metadata",
    ],
)
def test_a_nul_character_in_a_v2_path_is_a_bad_request(client, admin_auth, path):
    assert_bad_request(client.get(path, headers=admin_auth))


def test_a_nul_character_in_a_v2_get_features_path_is_a_bad_request(client, admin_auth):
    path = f"/api/v2/workspaces/prod/feature-services/{SERVICE}%00/get-features"
    assert_bad_request(client.post(path, data=orjson.dumps(params()), headers=admin_auth))


def test_an_overlong_name_is_refused_before_any_lookup_and_not_echoed(client, admin_auth):
    name = "x" * 2_000_000
    response = client.post(
        GET_FEATURES, data=orjson.dumps(params(featureServiceName=name)), headers=admin_auth
    )
    body = assert_bad_request(response, containing="featureServiceName")
    assert len(response.data) < 1000, body


@pytest.mark.parametrize("source", ["\u0000", "tran\u0000sactions"])
def test_a_nul_character_in_a_push_source_name_is_a_bad_request(client, admin_auth, source):
    body = {"workspace_name": "prod", "dry_run": False, "records": {source: []}}
    assert_bad_request(client.post("/ingest", data=orjson.dumps(body), headers=admin_auth))


def test_a_nul_character_in_an_ingest_workspace_name_is_a_bad_request(client, admin_auth):
    body = {"workspace_name": "p\u0000", "dry_run": True, "records": {"transactions": []}}
    assert_bad_request(client.post("/ingest", data=orjson.dumps(body), headers=admin_auth))


def _record(**overrides):
    record = {
        "user_id": "user_1",
        "merchant": "m1",
        "amt": 1.0,
        "timestamp": "2026-11-30T10:00:00Z",
    }
    return {"record": {**record, **overrides}}


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_nul_character_in_a_record_value_is_a_record_error(client, admin_auth, dry_run):
    body = {
        "workspace_name": "prod",
        "dry_run": dry_run,
        "records": {"transactions": [_record(merchant="m\u00001")]},
    }
    response = client.post("/ingest", data=orjson.dumps(body), headers=admin_auth)
    assert response.status_code == 400, response.data[:300]
    assert "recordErrors" in response.get_json()


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_timestamp_that_overflows_in_utc_is_a_record_error(client, admin_auth, stamp, dry_run):
    body = {
        "workspace_name": "prod",
        "dry_run": dry_run,
        "records": {"transactions": [_record(timestamp=stamp)]},
    }
    response = client.post("/ingest", data=orjson.dumps(body), headers=admin_auth)
    assert response.status_code == 400, response.data[:300]
    assert "recordErrors" in response.get_json()


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_overflowing_timestamp_in_a_viewers_dry_run_is_a_record_error(
    client, admin_auth, runner, stamp
):
    """The issue's exact case: a viewer key (allowed dry runs only) and `dry_run: true`."""
    viewer = runner.ok(
        "api-key", "create", "--description", "viewer", "--role", "viewer", "--workspace", "prod"
    ).stdout.strip()
    body = {
        "workspace_name": "prod",
        "dry_run": True,
        "records": {"transactions": [_record(timestamp=stamp)]},
    }
    headers = {"Authorization": f"Tecton-key {viewer}"}
    response = client.post("/ingest", data=orjson.dumps(body), headers=headers)
    assert response.status_code == 400, response.data[:300]
    assert response.mimetype == "application/json"
    assert "recordErrors" in response.get_json()


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_request_context_value_that_overflows_is_a_bad_request(
    client, admin_auth, runner, tmp_path, stamp
):
    definitions = tmp_path / "ts.yaml"
    transforms = tmp_path / "ts_transforms.py"
    transforms.write_text("def echo(request):\n    return {'at': request['at']}\n")
    definitions.write_text(
        """
realtime_feature_views:
  - name: echo_time
    sources:
      - request: req
        schema: [{name: at, type: Timestamp}]
    features: [{name: at, type: Timestamp}]
    transform: ts_transforms.py:echo
feature_services:
  - name: times
    features: [echo_time]
"""
    )
    runner.ok("workspace", "create", "times_ws")
    runner.ok("apply", "-f", str(definitions), "--workspace", "times_ws", "--yes")
    body = {
        "params": {
            "workspaceName": "times_ws",
            "featureServiceName": "times",
            "requestContextMap": {"at": stamp},
        }
    }
    response = client.post(GET_FEATURES, data=orjson.dumps(body), headers=admin_auth)
    assert_bad_request(response, containing="at")

"""Fidelity to Tecton found by the hardening run (issue 11, point 10), end to end: Float32
features as Tecton stores them, and one feature view located by `featureViewName`."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from tecton_client import MetadataOptions, TectonClient

from tests.repo.helpers import write_repo

DEFINITIONS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
push_sources:
  - name: readings
    timestamp_field: ts
    schema:
      - {name: user_id, type: String}
      - {name: ratio, type: Float32}
      - {name: ratios, type: Array(Float32)}
      - {name: exact, type: Float64}
      - {name: ts, type: Timestamp}
feature_views:
  - name: sensor
    entities: [user]
    source: readings
    features:
      - {name: ratio, type: Float32}
      - {name: ratios, type: Array(Float32)}
      - {name: exact, type: Float64}
  - name: archive
    entities: [user]
    source: readings
    online: false
    features:
      - {name: exact, type: Float64}
realtime_feature_views:
  - name: doubled
    sources: [{request: req, schema: [{name: x, type: Float64}]}, sensor]
    features: [{name: twice, type: Float32}]
    transform: transforms.py:doubled
feature_services:
  - name: sensors
    features: [sensor, doubled]
"""

TRANSFORMS = """
def doubled(req, sensor):
    return {"twice": req["x"] * 2}
"""


def float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


@pytest.fixture
def sensors(committed_runner, tmp_path, server):
    """The session's server with the sensor workspace and one reading ingested over HTTP."""
    committed_runner.ok("workspace", "create", "lab")
    path = write_repo(tmp_path, DEFINITIONS, TRANSFORMS)
    committed_runner.ok("apply", "-f", str(path), "--workspace", "lab", "--yes")
    key = committed_runner.ok(
        "api-key", "create", "--description", "lab", "--workspace", "lab", "--role", "editor"
    ).stdout.strip()
    headers = {"Authorization": f"Tecton-key {key}"}
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    record = {"user_id": "u1", "ratio": 0.1, "ratios": [0.2, 1.5], "exact": 0.1, "ts": at}
    body = {"workspace_name": "lab", "dry_run": False,
            "records": {"readings": [{"record": record}]}}  # fmt: skip
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/ingest", json=body, headers=headers).status_code == 200
    return server, key


def test_float32_features_are_served_at_float32_precision(sensors):
    server, key = sensors
    with httpx.Client() as http:
        client = TectonClient(server.base_url, key, default_workspace_name="lab", client=http)
        response = client.get_features(
            feature_service_name="sensors",
            join_key_map={"user_id": "u1"},
            request_context_map={"x": 0.1},
            metadata_options=MetadataOptions(include_names=True, include_data_types=True),
        )
    features = response.get_features_dict()
    assert features["sensor.ratio"] == float32(0.1) == 0.10000000149011612
    assert features["sensor.ratios"] == [float32(0.2), 1.5]
    assert features["sensor.exact"] == 0.1  # Float64 keeps its precision
    assert features["doubled.twice"] == float32(0.2)  # realtime outputs too


def test_a_feature_view_is_served_by_name_as_a_one_view_service(sensors):
    server, key = sensors
    headers = {"Authorization": f"Tecton-key {key}"}
    # As the SDK's FeatureView.get_online_features sends it (protobuf JSON, camelCase).
    body = {
        "params": {
            "featureViewName": "sensor",
            "workspaceName": "lab",
            "joinKeyMap": {"user_id": "u1"},
            "metadataOptions": {
                "includeNames": True,
                "includeDataTypes": True,
                "includeEffectiveTimes": True,
                "includeSloInfo": True,
            },
        }
    }
    url = f"{server.api_url}/v1/feature-service/get-features"
    with httpx.Client(timeout=10) as http:
        response = http.post(url, json=body, headers=headers)
        assert response.status_code == 200, response.text
        served = response.json()
        assert served["result"]["features"] == [0.1, float32(0.1), [float32(0.2), 1.5]]
        assert [(f["name"], f["dataType"]) for f in served["metadata"]["features"]] == [
            ("sensor.exact", {"type": "float64"}),
            ("sensor.ratio", {"type": "float32"}),
            ("sensor.ratios", {"type": "array", "elementType": {"type": "float32"}}),
        ]
        assert "sloInfo" in served["metadata"]

        realtime = {"params": {**body["params"], "featureViewName": "doubled",
                               "requestContextMap": {"x": 1.25}}}  # fmt: skip
        response = http.post(url, json=realtime, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["result"]["features"] == [2.5]
        assert [f["name"] for f in response.json()["metadata"]["features"]] == ["doubled.twice"]

        unknown = http.post(
            url, json={"params": {**body["params"], "featureViewName": "nope"}}, headers=headers
        )
        assert unknown.status_code == 404
        assert unknown.json()["message"] == "Unknown feature_view_name: nope for workspace: lab"
        offline = http.post(
            url, json={"params": {**body["params"], "featureViewName": "archive"}}, headers=headers
        )
        assert offline.status_code == 404 and offline.json()["code"] == 5
        both = http.post(
            url,
            json={"params": {**body["params"], "featureServiceName": "sensors"}},
            headers=headers,
        )
        assert both.status_code == 400
        assert both.json()["message"] == (
            "Exactly one of featureServiceName and featureViewName must be set."
        )

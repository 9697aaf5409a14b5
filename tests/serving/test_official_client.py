"""End to end: a real `tectonite serve`, called exactly as users call Tecton."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from tecton_client import AsyncTectonClient, MetadataOptions, TectonClient
from tecton_client.exceptions import NotFoundError, UnauthorizedError

from tests.serving.conftest import SERVICE

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "examples"
JOIN_KEYS = {"user_id": "user_1", "merchant": "m1"}


@pytest.fixture
def http():
    """The HTTP client handed to TectonClient (which has no close of its own)."""
    with httpx.Client() as client:
        yield client


def test_sync_client_get_features_dict_and_metadata(live, http):
    server, key = live
    client = TectonClient(server.base_url, key, default_workspace_name="prod", client=http)
    response = client.get_features(
        feature_service_name=SERVICE,
        join_key_map=JOIN_KEYS,
        request_context_map={"amt": 100.0},
        metadata_options=MetadataOptions(include_names=True, include_data_types=True),
    )
    features = response.get_features_dict()
    assert (
        features[
            "transaction_amount_is_higher_than_average.transaction_amount_is_higher_than_average"
        ]
        is True
    )
    assert features["user_profile.credit_score"] == 775  # int64 string decoded by the client
    assert features["user_transaction_counts.transaction_id_last_3_1d_1d"] == ["a1", "b2", None]
    assert features["user_last_transaction.amt"] is None
    assert next(iter(features)).startswith("transaction_amount_is_higher_than_average.")

    metadata = client.get_feature_service_metadata(feature_service_name=SERVICE)
    assert [k["name"] for k in metadata.input_join_keys] == ["user_id", "merchant"]
    assert [k["name"] for k in metadata.input_request_context_keys] == ["amt"]
    assert [f["name"] for f in metadata.feature_values] == list(features)


def test_async_client(live):
    server, key = live

    async def call():
        http = httpx.AsyncClient()
        client = AsyncTectonClient(server.base_url, key, default_workspace_name="prod", client=http)
        try:
            response = await client.get_features(
                feature_service_name=SERVICE,
                join_key_map=JOIN_KEYS,
                request_context_map={"amt": 1.0},
                metadata_options=MetadataOptions(include_names=True, include_data_types=True),
            )
            metadata = await client.get_feature_service_metadata(feature_service_name=SERVICE)
        finally:
            await http.aclose()
        return response.get_features_dict(), metadata

    features, metadata = asyncio.run(call())
    assert (
        features[
            "transaction_amount_is_higher_than_average.transaction_amount_is_higher_than_average"
        ]
        is False
    )
    assert len(metadata.feature_values) == len(features) == 16


def test_client_sees_tectons_errors(live, http):
    server, key = live
    client = TectonClient(server.base_url, key, default_workspace_name="prod", client=http)
    with pytest.raises(NotFoundError, match="Unable to query FeatureService `nope`"):
        client.get_features(feature_service_name="nope", join_key_map=JOIN_KEYS)
    bad = TectonClient(server.base_url, "tecto_nope", default_workspace_name="prod", client=http)
    with pytest.raises(UnauthorizedError, match="invalid 'Tecton-key' authorization header"):
        bad.get_features(feature_service_name=SERVICE, join_key_map=JOIN_KEYS)


def _shape(value):
    """A value's JSON kind, so encodings can be compared across payloads."""
    if isinstance(value, list):
        return "array"
    return type(value).__name__


@pytest.mark.skipif(not EXAMPLES.exists(), reason="shared/examples is beside the checkout")
def test_response_matches_the_captured_payloads(live):
    """Same keys, same value encodings per dataType as the Java client's captured responses."""
    server, key = live
    captured = json.loads(
        (EXAMPLES / "java-client/mocktest/getfeatures/sampleFeatureResponse1.json").read_text()
    )
    options = {"includeNames": True, "includeDataTypes": True, "includeEffectiveTimes": True,
               "includeServingStatus": True, "includeSloInfo": True}  # fmt: skip
    ours = httpx.post(
        f"{server.api_url}/v1/feature-service/get-features",
        json={"params": {"workspaceName": "prod", "featureServiceName": SERVICE,
                         "joinKeyMap": JOIN_KEYS, "requestContextMap": {"amt": 100.0},
                         "metadataOptions": options}},
        headers={"Authorization": f"Tecton-key {key}"},
        timeout=10,
    ).json()  # fmt: skip
    assert set(ours) == set(captured) == {"result", "metadata"}
    assert set(captured["metadata"]) <= {"features", "sloInfo"} <= set(ours["metadata"])

    def encodings(body):
        kinds = {}
        for value, item in zip(
            body["result"]["features"], body["metadata"]["features"], strict=True
        ):
            if value is not None and item["dataType"]["type"] in ("int64", "boolean", "string"):
                kinds[item["dataType"]["type"]] = _shape(value)
        return kinds

    captured_encodings = encodings(captured)
    assert captured_encodings  # int64 and boolean values are in the capture
    assert captured_encodings.items() <= encodings(ours).items()
    for item in captured["metadata"]["features"]:
        ours_item = next(
            i for i in ours["metadata"]["features"] if i["dataType"] == item["dataType"]
        )
        assert set(ours_item) == set(item)
    realtime = ours["metadata"]["features"][0]
    assert "effectiveTime" not in realtime and realtime["status"] == "PRESENT"
    assert set(captured["metadata"]["sloInfo"]) - {"dynamodbResponseSizeBytes"} <= set(
        ours["metadata"]["sloInfo"]
    )

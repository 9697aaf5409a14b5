"""get-features, batch, v2 and metadata in Tecton's wire format, with every error case."""

import tempfile

import pytest
from psycopg import pq

from tests.serving.conftest import SERVICE

GET = "/api/v1/feature-service/get-features"
REALTIME = "transaction_amount_is_higher_than_average"
BATCH = "/api/v1/feature-service/get-features-batch"
METADATA = "/api/v1/feature-service/metadata"
ALL_OPTIONS = {
    "includeNames": True, "includeDataTypes": True, "includeEffectiveTimes": True,
    "includeServingStatus": True, "includeSloInfo": True,
    "includeFeatureDescriptions": True, "includeFeatureTags": True,
}  # fmt: skip


def params(**overrides):
    base = {
        "workspaceName": "prod",
        "featureServiceName": SERVICE,
        "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
        "requestContextMap": {"amt": 100},
    }
    base.update(overrides)
    return {"params": base}


def post(client, auth, path, body):
    return client.post(path, json=body, headers=auth)


def test_values_are_encoded_as_tecton_does(client, auth):
    response = post(client, auth, GET, params())
    assert response.status_code == 200
    assert response.json == {
        "result": {
            "features": [
                True,  # realtime: 100 > 58.35, computed from the request and the upstream view
                0, 0.25, "NaN",  # whole float without fraction; NaN as a string
                None,  # user_last_transaction is older than its 30d ttl
                "775", [37.5, -122.25], True, "premium",  # int64 as string; struct positional
                58.349395161290275, 40, 842, 28941.299999999977,
                "3", "669", ["a1", "b2", None],
            ]
        }
    }  # fmt: skip


def test_metadata_items_carry_exactly_what_was_asked(client, auth, fraud):
    body = post(client, auth, GET, params(metadataOptions=ALL_OPTIONS)).json
    items = body["metadata"]["features"]
    assert items[0] == {
        "name": f"{REALTIME}.{REALTIME}",
        "dataType": {"type": "boolean"},
        "status": "PRESENT",
    }  # realtime features carry no effectiveTime
    recent = fraud["recent"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert items[5] == {
        "name": "user_profile.credit_score",
        "effectiveTime": recent,
        "dataType": {"type": "int64"},
        "status": "PRESENT",
        "tags": {"pii": "false"},
    }
    expired = items[4]
    assert expired["status"] == "MISSING_DATA" and expired["name"] == "user_last_transaction.amt"
    assert expired["description"] == "Amount of the last transaction"
    slo = body["metadata"]["sloInfo"]
    assert set(slo) == {
        "sloEligible", "sloServerTimeSeconds", "serverTimeSeconds", "storeMaxLatency",
        "storeResponseSizeBytes",
    }  # fmt: skip
    assert 0 < slo["storeMaxLatency"] <= slo["serverTimeSeconds"] < 2
    assert slo["storeResponseSizeBytes"] > 0

    names_only = post(client, auth, GET, params(metadataOptions={"include_names": True})).json
    assert all(set(item) == {"name"} for item in names_only["metadata"]["features"])
    assert "metadata" not in post(client, auth, GET, params(metadataOptions={})).json


def test_snake_case_mixed_case_and_null_maps(client, auth):
    body = {
        "params": {
            "feature_service_name": SERVICE,
            "workspaceName": "prod",
            "join_key_map": {"user_id": "user_1", "merchant": "m1"},
            "request_context_map": {"amt": 1.0},
            "metadata_options": {"include_names": True, "includeDataTypes": True},
            "requestOptions": None,
            "allowPartialResults": False,
        }
    }
    response = post(client, auth, GET, body)
    assert response.status_code == 200
    assert response.json["result"]["features"][0] is False
    assert set(response.json["metadata"]["features"][0]) == {"name", "dataType"}


def test_unknown_entity_is_missing_data(client, auth):
    body = params(joinKeyMap={"user_id": "nobody", "merchant": "nowhere"},
                  metadataOptions={"includeServingStatus": True})  # fmt: skip
    response = post(client, auth, GET, body).json
    assert response["result"]["features"][0] is False  # the transform saw None
    assert response["result"]["features"][1:] == [None] * 15
    assert [i["status"] for i in response["metadata"]["features"][1:]] == ["MISSING_DATA"] * 15


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (params(joinKeyMap={"user_id": "user_1"}), "Missing required join key: `merchant`"),
        (params(joinKeyMap={"user_id": "u", "merchant": "m", "ad_id": "1"}),
         "Unknown join key: ad_id, expected one of: [user_id merchant]"),
        (params(joinKeyMap={"user_id": 5, "merchant": "m"}),
         "Unexpected JSON type for user_id in joinKeyMap. Expected string or null."),
        (params(requestContextMap={}), "Expected key not found: [amt] in requestContextMap"),
        (params(requestContextMap={"amt": "lots"}),
         "Invalid value for amt in requestContextMap: expected a number, got a string"),
        ({"params": {"workspaceName": "prod"}},
         "Exactly one of featureServiceName and featureServiceId must be set."),
        ({"nothing": 1}, "Missing required field: params"),
    ],
)  # fmt: skip
def test_bad_input_is_400_with_tectons_message(client, auth, body, message):
    response = post(client, auth, GET, body)
    assert response.status_code == 400
    assert response.json == {"error": message, "code": 3, "message": message}


def test_batch_over_ten_rows_is_refused(client, auth):
    rows = [{"joinKeyMap": {"user_id": "u", "merchant": "m"}, "requestContextMap": {"amt": 1}}] * 11
    body = {"params": {"workspaceName": "prod", "featureServiceName": SERVICE, "requestData": rows}}
    response = post(client, auth, BATCH, body)
    assert response.status_code == 400
    assert response.json["message"] == "Batch size 11 exceeds maximum of 10."


@pytest.mark.parametrize(
    ("workspace", "service"),
    [("prod", "no_such_service"), ("no_such_workspace", SERVICE), ("dev", "svc")],
)
def test_unknown_or_non_live_is_404(client, runner, tmp_path, workspace, service):
    from tests.repo.helpers import MINIMAL, write_repo

    runner.ok("workspace", "create", "dev", "--development")
    runner.ok(
        "apply", "-f", str(write_repo(tmp_path / "dev", MINIMAL)), "--workspace", "dev", "--yes"
    )
    key = runner.ok("api-key", "create", "--description", "all").stdout.strip()
    body = params(workspaceName=workspace, featureServiceName=service)
    response = client.post(GET, json=body, headers={"Authorization": f"Tecton-key {key}"})
    message = (
        f"Unable to query FeatureService `{service}` for workspace `{workspace}`. Newly created "
        "feature services may take up to 60 seconds to query. Also, ensure that the workspace "
        "is a live workspace."
    )
    assert response.status_code == 404
    assert response.json == {"error": message, "code": 5, "message": message}


def test_online_serving_disabled_is_404(client, runner, tmp_path):
    from tests.repo.helpers import MINIMAL, write_repo

    runner.ok("workspace", "create", "w")
    text = MINIMAL + "    online_serving_enabled: false\n"
    runner.ok("apply", "-f", str(write_repo(tmp_path, text)), "--workspace", "w", "--yes")
    key = runner.ok("api-key", "create", "--description", "k", "--workspace", "w").stdout.strip()
    body = {
        "params": {
            "workspaceName": "w",
            "featureServiceName": "svc",
            "joinKeyMap": {"user_id": "u"},
        }
    }
    response = client.post(GET, json=body, headers={"Authorization": f"Tecton-key {key}"})
    assert response.status_code == 404 and response.json["code"] == 5


def test_batch_returns_one_result_per_row_with_status_arrays(client, auth):
    rows = [
        {"joinKeyMap": {"user_id": "user_1", "merchant": "m1"}, "requestContextMap": {"amt": 10}},
        {
            "join_key_map": {"user_id": "nobody", "merchant": "m1"},
            "request_context_map": {"amt": 10},
        },
    ]
    body = {"params": {"workspaceName": "prod", "featureServiceName": SERVICE,
                       "requestData": rows, "metadataOptions": ALL_OPTIONS}}  # fmt: skip
    response = post(client, auth, BATCH, body).json
    assert len(response["result"]) == 2
    assert response["result"][1]["features"][5] is None
    credit = response["metadata"]["features"][5]
    assert credit["status"] == ["PRESENT", "MISSING_DATA"]
    assert "effectiveTime" in credit
    assert len(response["metadata"]["sloInfo"]) == 2
    batch_slo = response["metadata"]["batchSloInfo"]
    assert batch_slo["sloServerTimeSeconds"] == max(
        s["sloServerTimeSeconds"] for s in response["metadata"]["sloInfo"]
    )


def test_v2_paths_take_workspace_and_service_from_the_url(client, auth):
    path = f"/api/v2/workspaces/prod/feature-services/{SERVICE}"
    body = {"params": {"joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
                       "requestContextMap": {"amt": 100}}}  # fmt: skip
    single = client.post(f"{path}/get-features", json=body, headers=auth)
    assert single.status_code == 200 and single.json["result"]["features"][0] is True
    batch = client.post(
        f"{path}/get-features-batch",
        json={"params": {"requestData": [body["params"]] * 2}},
        headers=auth,
    )
    assert len(batch.json["result"]) == 2
    metadata = client.get(f"{path}/metadata", headers=auth)
    assert metadata.json["inputJoinKeys"][0] == {"name": "user_id", "dataType": {"type": "string"}}


def test_metadata_endpoint(client, auth):
    body = {"params": {"featureServiceName": SERVICE, "workspaceName": "prod"}}
    response = post(client, auth, METADATA, body).json
    assert response["featureServiceType"] == "DEFAULT"
    assert response["inputJoinKeys"] == [
        {"name": "user_id", "dataType": {"type": "string"}},
        {"name": "merchant", "dataType": {"type": "string"}},
    ]
    assert response["inputRequestContextKeys"] == [{"name": "amt", "dataType": {"type": "float64"}}]
    features = post(client, auth, GET, params(metadataOptions={"includeNames": True})).json
    assert [f["name"] for f in response["featureValues"]] == [
        f["name"] for f in features["metadata"]["features"]
    ]
    unknown = post(
        client, auth, METADATA, {"params": {"featureServiceName": "x", "workspaceName": "prod"}}
    )
    assert unknown.status_code == 404
    assert unknown.json["message"] == "Unknown feature_service_name: x for workspace: prod"


def test_realtime_transform_errors_are_400_with_the_udf_message(client, runner, tmp_path, database):
    from tests.repo.helpers import MINIMAL, write_repo

    runner.ok("workspace", "create", "rt")
    text = (
        MINIMAL.replace("features: [user_stats]", "features: [user_stats, boom]")
        + """
realtime_feature_views:
  - name: boom
    sources: [{request: req, schema: [{name: x, type: Int64}]}]
    features: [{name: out, type: Int64}]
    transform: transforms.py:boom
"""
    )
    transforms = "def boom(req):\n    return {'out': 10 // req['x']}\n"
    runner.ok(
        "apply", "-f", str(write_repo(tmp_path, text, transforms)), "--workspace", "rt", "--yes"
    )
    key = runner.ok("api-key", "create", "--description", "k", "--workspace", "rt").stdout.strip()
    headers = {"Authorization": f"Tecton-key {key}"}
    body = {"params": {"workspaceName": "rt", "featureServiceName": "svc",
                       "joinKeyMap": {"user_id": "u"},
                       "requestContextMap": {"x": "0"}}}  # fmt: skip
    response = client.post(GET, json=body, headers=headers)
    assert response.status_code == 400
    assert (
        response.json["message"]
        == "ZeroDivisionError: integer division or modulo by zero (when evaluating UDF boom)"
    )
    body["params"]["requestContextMap"]["x"] = "5"
    assert client.post(GET, json=body, headers=headers).json["result"]["features"][0] == "2"


def round_trips(connection, action):
    """Run `action` and count the client→server round trips on `connection` (a libpq trace:
    each Sync or simple Query message is one), so BEGIN/ROLLBACK or a second statement shows."""
    driver = connection.connection.driver_connection
    with tempfile.TemporaryFile("w+") as trace:
        driver.pgconn.trace(trace.fileno())
        driver.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            action()
        finally:
            driver.pgconn.untrace()
        trace.seek(0)
        sent = [line.split("\t")[2].split()[0] for line in trace if line.startswith("F\t")]
    return sum(1 for message in sent if message in ("Sync", "Query")), sent


def test_one_round_trip_per_request_single_and_batch(client, auth, connection):
    post(client, auth, GET, params())  # warm the per-process caches (definitions, key)

    def single():
        assert post(client, auth, GET, params()).status_code == 200

    trips, sent = round_trips(connection, single)
    assert trips == 1, sent
    assert "Query" not in sent  # no BEGIN/ROLLBACK around the read

    rows = [{"joinKeyMap": {"user_id": f"user_{i}", "merchant": "m1"},
             "requestContextMap": {"amt": 1}} for i in range(10)]  # fmt: skip
    body = {"params": {"workspaceName": "prod", "featureServiceName": SERVICE, "requestData": rows}}

    def batch():
        assert post(client, auth, BATCH, body).status_code == 200

    assert round_trips(connection, batch)[0] == 1


def test_consumer_of_another_workspace_gets_403(client, runner, fraud):
    runner.ok("workspace", "create", "other")
    key = runner.ok(
        "api-key", "create", "--description", "o", "--workspace", "other"
    ).stdout.strip()
    response = client.post(GET, json=params(), headers={"Authorization": f"Tecton-key {key}"})
    assert response.status_code == 403 and response.json["code"] == 7


def test_rows_of_other_entities_with_equal_key_values_are_not_served(client, auth, database):
    """The store read probes views crossed with keys; a merchant row keyed like the requested
    user must not answer for the (absent) requested merchant."""
    from datetime import UTC, datetime

    from tests.serving.helpers import put_values

    put_values(database, "prod", "merchant_fraud_rate", ["user_1"], datetime.now(UTC),
               {"is_fraud_mean_1d_1d": 0.9})  # fmt: skip
    body = params(joinKeyMap={"user_id": "user_1", "merchant": "absent"},
                  metadataOptions={"includeServingStatus": True})  # fmt: skip
    response = post(client, auth, GET, body).json
    assert response["result"]["features"][1:4] == [None, None, None]
    assert [i["status"] for i in response["metadata"]["features"][1:4]] == ["MISSING_DATA"] * 3
    assert response["result"]["features"][5] == "775"  # the user's own views still answer

"""query-features: partial join keys return every stored entity that matches them."""

from datetime import UTC, datetime

from tests.repo.helpers import write_repo
from tests.serving.helpers import put_values

TWO_KEYS = """
entities:
  - name: user_merchant
    join_keys: [{name: user_id, type: String}, {name: merchant_id, type: Int64}]
feature_views:
  - name: pair_stats
    entities: [user_merchant]
    features: [{name: visits, type: Int64}]
feature_services:
  - name: pairs
    features: [pair_stats]
"""
QUERY = "/api/v1/feature-service/query-features"


def test_partial_keys_return_each_matching_entity(client, runner, database, tmp_path):
    runner.ok("workspace", "create", "q")
    runner.ok("apply", "-f", str(write_repo(tmp_path, TWO_KEYS)), "--workspace", "q", "--yes")
    when = datetime(2026, 1, 1, tzinfo=UTC)
    for user, merchant, visits in (("u1", "7", 3), ("u1", "42", 5), ("u2", "7", 9)):
        put_values(database, "q", "pair_stats", [user, merchant], when, {"visits": visits})
    key = runner.ok("api-key", "create", "--description", "k", "--workspace", "q").stdout.strip()
    headers = {"Authorization": f"Tecton-key {key}"}

    def query(join_keys, **extra):
        body = {"params": {"workspaceName": "q", "featureServiceName": "pairs",
                           "joinKeyMap": join_keys, **extra}}  # fmt: skip
        return client.post(QUERY, json=body, headers=headers)

    partial = query({"user_id": "u1"}, metadataOptions={"includeNames": True}).json
    assert sorted((r["joinKeys"], r["features"]) for r in partial["results"]) == [
        (["u1", "42"], ["5"]),
        (["u1", "7"], ["3"]),
    ]
    assert partial["metadata"]["joinKeys"] == [
        {"name": "user_id", "dataType": {"type": "string"}},
        {"name": "merchant_id", "dataType": {"type": "int64"}},
    ]
    assert partial["metadata"]["features"] == [{"name": "pair_stats.visits"}]

    full = query({"user_id": "u2", "merchant_id": "7"}).json
    assert full == {"results": [{"features": ["9"], "joinKeys": ["u2", "7"]}]}
    assert query({"user_id": "nobody"}).json == {"results": []}
    unknown = query({"shop": "x"})
    assert unknown.status_code == 400
    assert (
        unknown.json["message"] == "Unknown join key: shop, expected one of: [user_id merchant_id]"
    )


def test_int64_join_keys_as_strings_or_integers(client, runner, database, tmp_path):
    runner.ok("workspace", "create", "q")
    runner.ok("apply", "-f", str(write_repo(tmp_path, TWO_KEYS)), "--workspace", "q", "--yes")
    put_values(database, "q", "pair_stats", ["u1", "42"], datetime(2026, 1, 1, tzinfo=UTC),
               {"visits": 5})  # fmt: skip
    key = runner.ok("api-key", "create", "--description", "k", "--workspace", "q").stdout.strip()
    headers = {"Authorization": f"Tecton-key {key}"}

    def get(merchant):
        body = {"params": {"workspaceName": "q", "featureServiceName": "pairs",
                           "joinKeyMap": {"user_id": "u1", "merchant_id": merchant}}}  # fmt: skip
        return client.post("/api/v1/feature-service/get-features", json=body, headers=headers)

    for spelling in ("42", 42, "042"):
        assert get(spelling).json == {"result": {"features": ["5"]}}
    for bad in ("forty-two", 4.2, True, "99999999999999999999"):
        response = get(bad)
        assert response.status_code == 400
        assert response.json["message"] == (
            "Unexpected JSON type for merchant_id in joinKeyMap. Expected int64 or null."
        )
    assert get(None).json == {"result": {"features": [None]}}  # null key: missing, not an error


MERCHANT_FIRST = """
entities:
  - name: merchant_user
    join_keys: [{name: merchant_id, type: Int64}, {name: user_id, type: String}]
feature_views:
  - name: visits_by_merchant
    entities: [merchant_user]
    features: [{name: visits, type: Int64}]
feature_services:
  - name: by_merchant
    features: [visits_by_merchant]
"""


def test_leading_keys_are_canonical_and_a_null_one_matches_nothing(
    client, runner, database, tmp_path
):
    runner.ok("workspace", "create", "q")
    runner.ok("apply", "-f", str(write_repo(tmp_path, TWO_KEYS)), "--workspace", "q", "--yes")
    runner.ok("workspace", "create", "m")
    runner.ok(
        "apply", "-f", str(write_repo(tmp_path / "m", MERCHANT_FIRST)), "--workspace", "m", "--yes"
    )
    when = datetime(2026, 1, 1, tzinfo=UTC)
    # A user literally named "None": a null key must not find it.
    put_values(database, "q", "pair_stats", ["None", "7"], when, {"visits": 1})
    put_values(database, "m", "visits_by_merchant", ["7", "u1"], when, {"visits": 2})
    put_values(database, "m", "visits_by_merchant", ["7", "u2"], when, {"visits": 3})
    key = runner.ok("api-key", "create", "--description", "k").stdout.strip()
    headers = {"Authorization": f"Tecton-key {key}"}

    def query(workspace, service, join_keys):
        body = {"params": {"workspaceName": workspace, "featureServiceName": service,
                           "joinKeyMap": join_keys}}  # fmt: skip
        return client.post(QUERY, json=body, headers=headers)

    assert query("q", "pairs", {"user_id": None}).json == {"results": []}
    for spelling in ("007", 7, "+7"):
        found = query("m", "by_merchant", {"merchant_id": spelling}).json
        assert sorted((r["joinKeys"], r["features"]) for r in found["results"]) == [
            (["7", "u1"], ["2"]),
            (["7", "u2"], ["3"]),
        ], spelling
    bad = query("m", "by_merchant", {"merchant_id": "seven"})
    assert bad.status_code == 400
    assert bad.json["message"] == (
        "Unexpected JSON type for merchant_id in joinKeyMap. Expected int64 or null."
    )

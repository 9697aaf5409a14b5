"""Tecton's feature-service cache: CACHED_* statuses, no effective time, request options."""

from datetime import UTC, datetime

from tests.repo.helpers import MINIMAL, write_repo
from tests.serving.helpers import put_values

CACHED = MINIMAL.replace("ttl: 1d", "cache_max_age: 60s").replace(
    "features: [user_stats]", "features: [user_stats]\n    enable_online_caching: true"
)


def test_second_read_is_served_from_the_cache(client, runner, database, tmp_path):
    runner.ok("workspace", "create", "c")
    runner.ok("apply", "-f", str(write_repo(tmp_path, CACHED)), "--workspace", "c", "--yes")
    put_values(database, "c", "user_stats", ["u1"], datetime(2026, 1, 1, tzinfo=UTC),
               {"clicks": 1, "score": 0.5})  # fmt: skip
    key = runner.ok("api-key", "create", "--description", "k", "--workspace", "c").stdout.strip()
    headers = {"Authorization": f"Tecton-key {key}"}

    def get(**request_options):
        body = {"params": {"workspaceName": "c", "featureServiceName": "svc",
                           "joinKeyMap": {"user_id": "u1"}, "requestOptions": request_options,
                           "metadataOptions": {"includeServingStatus": True,
                                               "includeEffectiveTimes": True}}}  # fmt: skip
        return client.post("/api/v1/feature-service/get-features", json=body, headers=headers).json

    first = get()
    assert [i["status"] for i in first["metadata"]["features"]] == ["PRESENT", "PRESENT"]
    put_values(database, "c", "user_stats", ["u1"], datetime(2026, 1, 2, tzinfo=UTC),
               {"clicks": 2, "score": 0.5})  # fmt: skip
    cached = get()
    assert cached["result"]["features"] == ["1", 0.5]  # the cached value, not the new one
    assert cached["metadata"]["features"] == [{"status": "CACHED_PRESENT"}] * 2
    fresh = get(readFromCache=False, writeToCache=False)
    assert fresh["result"]["features"] == ["2", 0.5]
    assert [i["status"] for i in fresh["metadata"]["features"]] == ["PRESENT", "PRESENT"]
    assert get()["result"]["features"] == ["1", 0.5]  # writeToCache=false left the cache alone
    missing = client.post(
        "/api/v1/feature-service/get-features",
        json={"params": {"workspaceName": "c", "featureServiceName": "svc",
                         "joinKeyMap": {"user_id": "nobody"}}},
        headers=headers,
    )  # fmt: skip
    assert missing.status_code == 200

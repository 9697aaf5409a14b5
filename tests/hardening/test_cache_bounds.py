"""Per-process caches stay bounded whatever names and keys requests bring."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import orjson

from app.changes import ChangeFeed
from app.lru import LruDict
from app.repo.transforms import TransformCache
from app.serving.cache import MAX_UNKNOWN_NAMES, SERVING, FeatureCache, ServiceCache
from tests.serving.conftest import SERVICE, seed_fraud

GET = "/api/v1/feature-service/get-features"
METADATA = "/api/v1/feature-service/metadata"


def params(service: str) -> bytes:
    return orjson.dumps(
        {
            "params": {
                "workspaceName": "prod",
                "featureServiceName": service,
                "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
                "requestContextMap": {"amt": 10.0},
            }
        }
    )


def test_a_flood_of_unknown_names_leaves_the_service_cache_bounded(
    app, client, runner, database, tmp_path
):
    seed_fraud(runner, database, tmp_path)
    consumer = runner.ok("api-key", "create", "--description", "c", "--workspace", "prod")
    auth = {"Authorization": f"Tecton-key {consumer.stdout.strip()}"}
    viewer = runner.ok(
        "api-key", "create", "--description", "v", "--role", "viewer", "--workspace", "prod"
    ).stdout.strip()
    viewer_auth = {"Authorization": f"Tecton-key {viewer}"}
    assert client.post(GET, data=params(SERVICE), headers=auth).status_code == 200
    services = SERVING.get(app).services
    assert ("prod", SERVICE) in services.entries

    flood = MAX_UNKNOWN_NAMES + 200
    for i in range(flood):
        name = f"unknown-{i:05d}-" + "x" * 240  # as long as a name may be
        if i % 2:
            response = client.post(GET, data=params(name), headers=auth)
        else:
            response = client.post(METADATA, data=params(name), headers=viewer_auth)
        assert response.status_code == 404
        assert len(response.data) < 1000  # the name is echoed once at most, never more

    assert len(services.unknown) == MAX_UNKNOWN_NAMES
    # The flood never pushed the real service out: it is still served from the cache.
    assert ("prod", SERVICE) in services.entries
    assert client.post(GET, data=params(SERVICE), headers=auth).status_code == 200


def test_lru_dict_drops_the_least_recently_used():
    entries: LruDict[str, int] = LruDict(3)
    for name in "abc":
        entries[name] = ord(name)
    entries.touch("a")  # used: "b" is now the oldest
    entries["d"] = 4
    assert list(entries) == ["c", "a", "d"]
    entries["c"] = 5  # rewriting counts as use
    entries["e"] = 6
    assert list(entries) == ["d", "c", "e"]


def test_the_service_cache_keeps_its_bounds_and_drops_a_workspace_from_both():
    cache = ServiceCache(ChangeFeed(), max_services=2, max_unknown=3)
    found = {"a": object(), "b": object(), "c": object()}

    def resolve(_session, workspace, name):
        return found.get(name)

    for name in ["a", "b", "c", "x1", "x2", "x3", "x4"]:
        cache.get(nullcontext, "ws", name, resolve=resolve)
    assert len(cache.entries) == 2 and len(cache.unknown) == 3
    assert ("ws", "a") not in cache.entries  # least recently used
    assert ("ws", "x1") not in cache.unknown
    cache.invalidate("ws")
    assert len(cache.entries) == len(cache.unknown) == 0


def test_the_feature_cache_is_bounded():
    cache = FeatureCache(ChangeFeed(), max_entries=100)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1000):
        cache.put(("ws", "svc", "view", f'["user_{i}"]'), 60, [i], "PRESENT", now)
    assert len(cache.entries) == 100
    assert cache.get(("ws", "svc", "view", '["user_999"]'), now + timedelta(seconds=1)) == (
        [999],
        "PRESENT",
    )
    assert cache.get(("ws", "svc", "view", '["user_0"]'), now) is None


def test_compiled_transforms_are_bounded():
    cache = TransformCache(max_entries=5)
    for version in range(20):
        source = f"def f(request):\n    return {{'out': {version}}}\n"
        assert cache.compiled(source, "f", "v")({}) == {"out": version}
    assert len(cache) == 5

"""Reset between tests, and explain, against the real server."""

from datetime import UTC, datetime, timedelta

import httpx
import orjson

from app.types import format_timestamp
from tests.emulator.conftest import GET_FEATURES, WITH_STATUS, features_body, wait_for
from tests.repo.helpers import MINIMAL, write_repo
from tests.serving.conftest import SERVICE
from tests.serving.helpers import put_values

CACHED = MINIMAL.replace("ttl: 1d", "ttl: 1d\n    cache_max_age: 60s").replace(
    "features: [user_stats]", "features: [user_stats]\n    enable_online_caching: true"
)
CACHED_BODY = {"params": {"workspaceName": "c", "featureServiceName": "svc",
                          "joinKeyMap": {"user_id": "u1"}, **WITH_STATUS}}  # fmt: skip


def cached_workspace(runner, database, tmp_path, event_time):
    runner.ok("workspace", "create", "c")
    runner.ok("apply", "-f", str(write_repo(tmp_path / "c", CACHED)), "--workspace", "c", "--yes")
    put_values(database, "c", "user_stats", ["u1"], event_time, {"clicks": 1, "score": 0.5})
    key = runner.ok("api-key", "create", "--description", "c", "--workspace", "c")
    return {"Authorization": f"Tecton-key {key.stdout.strip()}"}


def test_reset_values_is_seen_by_the_next_request_on_every_worker(
    emulator, committed_runner, clean_database, tmp_path
):
    headers = cached_workspace(
        committed_runner, clean_database, tmp_path, datetime.now(UTC) - timedelta(hours=1)
    )

    def statuses(client):
        body = client.post(GET_FEATURES, json=CACHED_BODY, headers=headers).json()
        return body["metadata"]["features"][0]["status"]

    # Every worker thread ends up with the value in its process's cache.
    wait_for(lambda: set(emulator.spread(16, statuses)) == {"CACHED_PRESENT"}, timeout=30)
    result = emulator.ok("POST", "/reset", json={"workspace": "c"})
    assert result == {"scope": "values", "workspace": "c", "valuesDeleted": 1,
                      "workspacesDeleted": 0}  # fmt: skip
    # Never the old value again: misses are served (and then cached) as missing.
    assert set(emulator.spread(32, statuses)) <= {"MISSING_DATA", "CACHED_MISSING_DATA"}


def test_reset_all_keeps_keys_and_roles(server, fraud_live, emulator, committed_runner):
    key, _ = fraud_live
    result = emulator.ok("POST", "/reset", json={"scope": "all"})
    assert result["workspacesDeleted"] == 1 and result["valuesDeleted"] == 5
    listed = orjson.loads(committed_runner.ok("workspace", "list", "--json").stdout)
    assert listed == []
    response = httpx.post(f"{server.base_url}{GET_FEATURES}", json=features_body(),
                          headers={"Authorization": f"Tecton-key {key}"})  # fmt: skip
    assert response.status_code == 404  # the key still authenticates and its role still holds
    assert len(orjson.loads(committed_runner.ok("api-key", "list", "--json").stdout)) == 2


def test_bad_resets_change_nothing(emulator, fraud_live, committed_runner):
    for body, status, named in (({"scope": "everything"}, 400, "scope"),
                                ({"workspace": "nope"}, 404, "nope"),
                                ({"workspace": 7}, 400, "workspace")):  # fmt: skip
        response = emulator.call("POST", "/reset", json=body)
        assert response.status_code == status and named in response.json()["message"]
    refused = committed_runner.invoke("reset", "--workspace", "prod")
    assert refused.exit_code != 0 and "--yes" in refused.output
    explained = emulator.ok("POST", "/explain", json=features_body())
    assert {f["status"] for f in explained["features"]} >= {"PRESENT"}
    done = committed_runner.ok("reset", "--workspace", "prod", "--yes").stdout
    assert done.strip() == 'Reset values of workspace "prod": 5 stored rows deleted.'


def test_explain_says_why_each_feature_has_its_status(server, fraud_live, emulator):
    key, times = fraud_live
    explained = emulator.ok("POST", "/explain", json=features_body())
    served = httpx.post(f"{server.base_url}{GET_FEATURES}", json=features_body(**WITH_STATUS),
                        headers={"Authorization": f"Tecton-key {key}"}).json()  # fmt: skip
    assert [f["name"] for f in explained["features"]] == [
        f["name"] for f in served["metadata"]["features"]
    ]
    assert [f["value"] for f in explained["features"]] == served["result"]["features"]
    assert [f["status"] for f in explained["features"]] == [
        f["status"] for f in served["metadata"]["features"]
    ]
    by_name = {f["name"]: f for f in explained["features"]}
    old = by_name["user_last_transaction.amt"]
    event = times["recent"] - timedelta(days=31)
    assert old["status"] == "MISSING_DATA" and old["rowFound"] is True and old["expired"] is True
    assert old["entityKey"] == '["user_1"]' and old["eventTime"] == format_timestamp(event)
    assert old["ttlDeadline"] == format_timestamp(event + timedelta(days=30))
    assert "ttl of 30d ran out" in old["reason"]
    present = by_name["user_profile.credit_score"]
    assert present["status"] == "PRESENT" and present["expired"] is False
    name = "transaction_amount_is_higher_than_average"
    realtime = by_name[f"{name}.{name}"]
    assert realtime["source"] == "realtime" and realtime["inputs"]["request"] == {"amt": 1.0}
    upstream = realtime["inputs"]["user_transaction_amount_metrics"]
    assert upstream["status"] == "PRESENT" and upstream["features"]["amt_mean_1d_10m"] > 58

    nobody = emulator.ok("POST", "/explain", json=features_body("nobody"))
    profile = {f["name"]: f for f in nobody["features"]}["user_profile.credit_score"]
    assert profile["rowFound"] is False and profile["entityKey"] == '["nobody"]'
    assert profile["reason"] == 'no row for entity key ["nobody"] in user_profile'

    # Freeze the clock back when the old row was fresh: explain follows the emulated clock.
    emulator.ok("POST", "/clock", json={"freezeAt": format_timestamp(event + timedelta(days=1))})
    back = emulator.ok("POST", "/explain", json=features_body())
    assert {f["name"]: f for f in back["features"]}["user_last_transaction.amt"]["status"] == (
        "PRESENT"
    )
    bad = emulator.call("POST", "/explain", json={"params": {"featureServiceName": SERVICE}})
    assert bad.status_code == 400 and "Missing required join key" in bad.json()["message"]


def test_explain_shows_the_cache_and_its_age_on_the_emulated_clock(
    server, emulator, committed_runner, clean_database, tmp_path
):
    emulator.ok("POST", "/clock", json={"freezeAt": "2026-05-01T00:00:00Z"})
    headers = cached_workspace(
        committed_runner, clean_database, tmp_path, datetime(2026, 4, 30, 12, tzinfo=UTC)
    )
    explain_body = {"params": {k: v for k, v in CACHED_BODY["params"].items()
                               if k != "metadataOptions"}}  # fmt: skip
    # One keep-alive connection: the same worker serves the read and the explanations.
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        admin = emulator.admin_headers
        wait_for(lambda: client.get("/_emulator/clock", headers=admin).json()["frozen"])
        client.post(GET_FEATURES, json=CACHED_BODY, headers=headers)
        client.post("/_emulator/clock", json={"advance": "10s"}, headers=admin)
        first = client.post("/_emulator/explain", json=explain_body, headers=admin).json()
        clicks = first["features"][0]
        assert clicks["status"] == "CACHED_PRESENT" and clicks["source"] == "cache"
        assert clicks["cache"] == {"maxAgeSeconds": 60, "entry": True, "ageSeconds": 10.0,
                                   "expired": False}  # fmt: skip
        client.post("/_emulator/clock", json={"advance": "1m"}, headers=admin)
        later = client.post("/_emulator/explain", json=explain_body, headers=admin).json()
        clicks = later["features"][0]
        assert clicks["status"] == "PRESENT" and clicks["cache"]["expired"] is True


def test_cli_explain(fraud_live, committed_runner):
    out = committed_runner.ok(
        "explain", "--workspace", "prod", "--service", SERVICE, "--join-key", "user_id=user_1",
        "--join-key", "merchant=m1", "--context", "amt=1.0",
    ).stdout  # fmt: skip
    assert (
        "user_last_transaction.amt = null  MISSING_DATA: row found in user_last_transaction" in out
    )
    as_json = orjson.loads(committed_runner.ok(
        "explain", "-w", "prod", "-s", SERVICE, "--join-key", "user_id=nobody",
        "--join-key", "merchant=m1", "--context", "amt=1", "--json").stdout)  # fmt: skip
    assert all(f["status"] in ("PRESENT", "MISSING_DATA") for f in as_json["features"])
    missing = committed_runner.invoke("explain", "-w", "prod", "-s", SERVICE)
    assert missing.exit_code != 0 and "Missing required join key" in missing.output

"""Fault rules against the real server: Tecton's error bodies, exact `times` across workers,
reproducible seeded probability, matching, and the official client's exceptions."""

import time

import httpx
import orjson
import pytest
from sqlalchemy import text
from tecton_client import TectonClient
from tecton_client.exceptions import (
    GatewayTimeoutError,
    ResourceExhaustedError,
    ServiceUnavailableError,
    TectonHttpException,
)

from app.emulator.faults import FAULTS, add_rule
from app.emulator.schemas import load_fault_rule
from tests.emulator.conftest import GET_FEATURES, features_body, wait_for
from tests.serving.conftest import SERVICE

BATCH = "/api/v1/feature-service/get-features-batch"
METADATA = "/api/v1/feature-service/metadata"


@pytest.fixture
def client_for():
    """A TectonClient factory whose httpx clients are closed after the test."""
    opened = []

    def make(server, key):
        http = httpx.Client(timeout=10)
        opened.append(http)
        return TectonClient(server.base_url, key, default_workspace_name="prod", client=http)

    yield make
    for http in opened:
        http.close()


def get_features(client, user="user_1"):
    return client.get_features(
        feature_service_name=SERVICE,
        join_key_map={"user_id": user, "merchant": "m1"},
        request_context_map={"amt": 1.0},
    )


@pytest.mark.parametrize(
    ("status", "exception", "message", "code"),
    [
        (429, ResourceExhaustedError,
         "GetFeatures exceeded the concurrent request limit, please retry later", 8),
        (503, ServiceUnavailableError, "503 Service Temporarily Unavailable", 14),
        (504, GatewayTimeoutError, "Timed out", 4),
    ],
)  # fmt: skip
def test_injected_statuses_raise_the_clients_own_exceptions(
    server, fraud_live, emulator, client_for, status, exception, message, code
):
    key, _ = fraud_live
    emulator.ok("POST", "/faults", json={"endpoint": "get-features", "status": status})
    client = client_for(server, key)
    with pytest.raises(exception) as raised:
        get_features(client)
    assert type(raised.value) is exception
    assert str(raised.value).endswith(f": {message}")
    raw = httpx.post(
        f"{server.api_url}/v1/feature-service/get-features",
        json=features_body(),
        headers={"Authorization": f"Tecton-key {key}"},
    )
    assert raw.status_code == status
    assert raw.json() == {"error": message, "code": code, "message": message}
    assert raw.headers["Content-Type"] == "application/json"


def test_an_injected_500_is_what_the_client_raises_for_tectons_500(
    server, fraud_live, emulator, client_for
):
    key, _ = fraud_live
    emulator.ok("POST", "/faults", json={"status": 500})
    with pytest.raises(TectonHttpException) as raised:
        get_features(client_for(server, key))
    assert type(raised.value) is TectonHttpException  # the client has no class for 500
    assert str(raised.value).startswith("500 ")
    raw = httpx.post(
        f"{server.api_url}/v1/feature-service/get-features",
        json=features_body(),
        headers={"Authorization": f"Tecton-key {key}"},
    )
    assert raw.json()["code"] == 13


def test_429_names_each_endpoint_like_tecton(server, fraud_live, emulator, client_for):
    key, _ = fraud_live
    emulator.ok("POST", "/faults", json={"endpoint": "*", "status": 429})
    with pytest.raises(ResourceExhaustedError, match="Metadata exceeded the concurrent request"):
        client_for(server, key).get_feature_service_metadata(feature_service_name=SERVICE)
    headers = {"Authorization": f"Tecton-key {key}"}
    batch = httpx.post(f"{server.base_url}{BATCH}", headers=headers, json={"params": {
        "workspaceName": "prod", "featureServiceName": SERVICE, "requestData": []}})  # fmt: skip
    assert batch.json()["message"].startswith("GetFeaturesBatch exceeded")


def test_times_is_exact_across_workers_under_eight_connections(server, fraud_live, emulator):
    key, _ = fraud_live
    headers = {"Authorization": f"Tecton-key {key}"}
    rule = emulator.ok("POST", "/faults", json={"status": 503, "times": 3})
    assert set(rule) == {"id"}
    wait_for(lambda: emulator.spread(1, lambda c: c.get(f"{server.base_url}/healthz")))

    def send(client):
        return client.post(GET_FEATURES, json=features_body(), headers=headers).status_code

    statuses = emulator.spread(48, send)
    assert sorted(statuses).count(503) == 3, statuses
    assert statuses.count(200) == 45
    assert emulator.ok("GET", "/faults") == {"faults": []}  # used up, so removed


def test_seeded_probability_is_reproducible(server, fraud_live, emulator):
    key, _ = fraud_live
    headers = {"Authorization": f"Tecton-key {key}"}
    rule = {"endpoint": "get-features", "status": 503, "probability": 0.5, "seed": 42}

    def pattern():
        emulator.ok("DELETE", "/faults")
        emulator.ok("POST", "/faults", json=rule)
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            return [
                client.post(GET_FEATURES, json=features_body(), headers=headers).status_code
                for _ in range(24)
            ]

    first = pattern()
    assert set(first) == {200, 503}
    assert pattern() == first
    never = emulator.ok("POST", "/faults", json={**rule, "probability": 0})
    emulator.ok("DELETE", f"/faults/{never['id'] - 1}")
    assert set(emulator.spread(8, lambda c: c.post(
        GET_FEATURES, json=features_body(), headers=headers).status_code)) == {200}  # fmt: skip


def test_rules_match_workspace_service_and_join_keys(server, fraud_live, emulator):
    key, _ = fraud_live
    headers = {"Authorization": f"Tecton-key {key}"}
    emulator.ok("POST", "/faults", json={"joinKeys": {"user_id": "user_2"}, "status": 503})
    emulator.ok("POST", "/faults", json={"workspace": "other", "status": 504})
    emulator.ok("POST", "/faults", json={"featureService": "not_this_one", "status": 429})

    def status_for(user):
        return lambda c: c.post(GET_FEATURES, json=features_body(user), headers=headers).status_code

    assert set(emulator.spread(8, status_for("user_1"))) == {200}
    assert set(emulator.spread(8, status_for("user_2"))) == {503}


def test_delay_without_status_slows_the_request_and_then_serves_it(server, fraud_live, emulator):
    key, _ = fraud_live
    emulator.ok("POST", "/faults", json={"endpoint": "get-features", "delayMs": 300, "times": 1})
    started = time.monotonic()
    response = httpx.post(f"{server.base_url}{GET_FEATURES}", json=features_body(),
                          headers={"Authorization": f"Tecton-key {key}"}, timeout=10)  # fmt: skip
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_rules_never_apply_to_the_emulator_or_the_probes(server, emulator):
    emulator.ok("POST", "/faults", json={"endpoint": "*", "status": 503})
    for path in ("/healthz", "/readyz"):
        assert set(emulator.spread(8, lambda c, p=path: c.get(p).status_code)) == {200}
    assert emulator.call("GET", "/clock").status_code == 200
    assert emulator.call("GET", "/faults").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"endpoint": "get-everything", "status": 503}, "endpoint"),
        ({"status": 503, "times": -1}, "times"),
        ({"status": 503, "times": 0}, "times"),
        ({"status": 503, "probability": 1.5}, "probability"),
        ({"status": 503, "probability": -0.1}, "probability"),
        ({"status": 418}, "status"),
        ({"delayMs": -5}, "delayMs"),
        ({"endpoint": "get-features"}, "status"),
        ({"status": 503, "joinKeys": {"user_id": [1]}}, "joinKeys"),
        ({"status": 503, "seed": 1}, "seed"),
        ({"status": 503, "colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_400_naming_the_field_and_add_nothing(emulator, body, field):
    response = emulator.call("POST", "/faults", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert field in response.json()["message"]
    assert emulator.ok("GET", "/faults") == {"faults": []}


def test_listing_and_clearing_rules(emulator):
    first = emulator.ok("POST", "/faults", json={"status": 503, "times": 2, "workspace": "prod"})
    second = emulator.ok("POST", "/faults", json={"delayMs": 10})
    listed = emulator.ok("GET", "/faults")["faults"]
    assert listed == [
        {"id": first["id"], "endpoint": "*", "workspace": "prod", "status": 503, "times": 2,
         "remaining": 2},
        {"id": second["id"], "endpoint": "*", "delayMs": 10},
    ]  # fmt: skip
    assert emulator.ok("DELETE", f"/faults/{first['id']}") == {"removed": 1}
    missing = emulator.call("DELETE", f"/faults/{first['id']}")
    assert missing.status_code == 404 and missing.json()["code"] == 5
    assert emulator.ok("DELETE", "/faults") == {"removed": 1}


def test_cli_rules_reach_the_server(server, fraud_live, emulator, committed_runner):
    key, _ = fraud_live
    headers = {"Authorization": f"Tecton-key {key}"}
    rule_id = committed_runner.ok(
        "fault", "add", "--endpoint", "get-features", "--status", "504",
        "--join-key", "user_id=user_1", "--times", "5",
    ).stdout.strip()  # fmt: skip
    listed = orjson.loads(committed_runner.ok("fault", "list", "--json").stdout)
    assert listed == [{"id": int(rule_id), "endpoint": "get-features",
                       "joinKeys": {"user_id": "user_1"}, "status": 504, "times": 5,
                       "remaining": 5}]  # fmt: skip

    def send(client):
        return client.post(GET_FEATURES, json=features_body(), headers=headers).status_code

    wait_for(lambda: emulator.spread(1, send) == [504], timeout=1.5)
    assert "Removed 1 fault rule(s)." in committed_runner.ok("fault", "clear", rule_id).stdout
    wait_for(lambda: set(emulator.spread(8, send)) == {200}, timeout=1.5)
    bad = committed_runner.invoke("fault", "add", "--status", "503", "--probability", "2")
    assert bad.exit_code != 0 and "probability" in bad.output
    assert committed_runner.ok("fault", "list").stdout.strip() == "No fault rules."


def test_a_rule_cleared_in_the_database_never_fires_from_a_stale_copy(app, database):
    """A process that has not yet heard of a clear still holds the rule in its copy; the
    database has the last word, so the next request is served as if the rule never was (the
    next test's requests must not meet the last test's faults)."""
    with database.session() as session:
        rule_id = add_rule(session, load_fault_rule({"status": 503}))
        session.commit()
    with app.test_client() as client:
        assert client.post(GET_FEATURES, json=features_body()).status_code == 503
        with database.session() as session:
            session.execute(text("DELETE FROM emulator_faults WHERE id = :id"), {"id": rule_id})
            session.commit()  # no change notice: this process's copy is now stale
        stale = FAULTS.get(app).snapshot.get()
        assert [rule.id for rule in stale] == [rule_id]
        assert client.post(GET_FEATURES, json=features_body()).status_code == 401  # no key

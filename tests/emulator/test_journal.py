"""The request journal: what it records (never a key), filters, cap, off switch, failures."""

from datetime import UTC, datetime

import httpx
import orjson
import pytest
from sqlalchemy import text

from app import create_app
from app.db import Database
from app.emulator.journal import JournalWriter, Pending
from tests.emulator.conftest import GET_FEATURES, features_body
from tests.serving.conftest import SERVICE

STATE = "/api/v1/feature-service/get-feature-service-state"


def test_every_api_request_is_recorded_without_its_key(server, fraud_live, emulator):
    key, _ = fraud_live
    headers = {"Authorization": f"Tecton-key {key}"}
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.post(GET_FEATURES, json=features_body(), headers=headers).status_code == 200
        unknown = features_body()
        unknown["params"]["featureServiceName"] = "nope"
        assert client.post(GET_FEATURES, json=unknown, headers=headers).status_code == 404
        assert client.post(GET_FEATURES, json=features_body()).status_code == 401
        v2 = f"/api/v2/workspaces/prod/feature-services/{SERVICE}/metadata"
        assert client.get(v2, headers=headers).status_code == 200
        client.get("/healthz")
        client.get("/readyz")
    emulator.ok("GET", "/clock")

    entries = emulator.journal(4)
    assert len(entries) == 4  # not the probes, not /_emulator
    metadata, unauthenticated, not_found, ok = entries  # newest first
    key_id = key.split("_")[1]
    assert ok["endpoint"] == "get-features" and ok["status"] == 200
    assert ok["method"] == "POST" and ok["path"] == GET_FEATURES
    assert (ok["workspace"], ok["featureService"], ok["apiKeyId"]) == ("prod", SERVICE, key_id)
    assert ok["body"] == features_body() and ok["error"] is None
    assert ok["durationMs"] > 0 and ok["time"].endswith("Z")
    assert not_found["status"] == 404 and not_found["featureService"] == "nope"
    assert not_found["error"].startswith("Unable to query FeatureService `nope`")
    assert unauthenticated["status"] == 401 and unauthenticated["apiKeyId"] is None
    assert unauthenticated["error"].startswith("invalid 'Tecton-key' authorization header")
    assert metadata["endpoint"] == "metadata" and metadata["workspace"] == "prod"
    assert metadata["featureService"] == SERVICE and metadata["body"] is None
    raw = emulator.call("GET", "/requests").text
    assert key not in raw and key.split("_")[2] not in raw


def test_filters_and_limit(server, fraud_live, emulator):
    key, _ = fraud_live
    headers = {"Authorization": f"Tecton-key {key}"}
    state = {"featureServiceLocator": {"featureServiceName": SERVICE, "workspaceName": "prod"}}
    emulator.ok("POST", "/faults", json={"endpoint": "get-features", "status": 503, "times": 1})
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for _ in range(3):
            client.post(GET_FEATURES, json=features_body(), headers=headers)
        client.post(STATE, json=state, headers=headers)
    assert len(emulator.journal(4)) == 4
    only = emulator.ok("GET", "/requests", params={"endpoint": "get-feature-service-state"})
    assert [e["endpoint"] for e in only["requests"]] == ["get-feature-service-state"]
    failed = emulator.ok("GET", "/requests", params={"status": 503})["requests"]
    assert len(failed) == 1 and failed[0]["error"] == "503 Service Temporarily Unavailable"
    assert len(emulator.ok("GET", "/requests", params={"limit": 2})["requests"]) == 2
    scoped = {"workspace": "prod", "featureService": SERVICE, "endpoint": "get-features"}
    assert len(emulator.ok("GET", "/requests", params=scoped)["requests"]) == 3
    other = emulator.ok("GET", "/requests", params={"workspace": "elsewhere"})
    assert other == {"requests": []}
    bad = [({"limit": 0}, "limit"), ({"endpoint": "everything"}, "endpoint"),
           ({"status": "teapot"}, "status"), ({"colour": "red"}, "colour")]  # fmt: skip
    for params, field in bad:
        response = emulator.call("GET", "/requests", params=params)
        assert response.status_code == 400 and field in response.json()["message"]
    assert emulator.ok("DELETE", "/requests")["removed"] == 4
    assert emulator.ok("GET", "/requests") == {"requests": []}


def test_cli_lists_and_clears_the_journal(server, fraud_live, emulator, committed_runner):
    key, _ = fraud_live
    httpx.post(f"{server.base_url}{GET_FEATURES}", json=features_body(),
               headers={"Authorization": f"Tecton-key {key}"})  # fmt: skip
    emulator.journal(1)
    listed = orjson.loads(committed_runner.ok("requests", "--json").stdout)
    assert [e["endpoint"] for e in listed] == ["get-features"]
    text_out = committed_runner.ok("requests", "--endpoint", "get-features").stdout
    assert "200  POST /api/v1/feature-service/get-features  get-features prod/" in text_out
    assert committed_runner.ok("requests", "clear").stdout.strip() == "Removed 1 journal entries."
    assert orjson.loads(committed_runner.ok("requests", "--json").stdout) == []


# ------------------------------------------------------------------ in-process: cap, off, failure


def _admin_headers(runner):
    key = runner.ok("api-key", "create", "--description", "a", "--admin").stdout.strip()
    return {"Authorization": f"Tecton-key {key}"}


@pytest.fixture
def empty_journal(connection):
    """In-process tests see what real servers of earlier tests committed (their journal writers
    finish after those tests): start from an empty journal, inside the test's transaction."""
    connection.execute(text("DELETE FROM emulator_journal"))


@pytest.mark.usefixtures("empty_journal")
def test_the_journal_keeps_only_the_newest_entries(settings, database, runner):
    app = create_app(settings.replace(journal_size=3), database=database)
    headers = _admin_headers(runner)
    with app.test_client() as client:
        for index in range(5):
            client.post(GET_FEATURES, json={"params": {"featureServiceName": f"s{index}"}})
        entries = client.get("/_emulator/requests", headers=headers).json["requests"]
    assert [e["featureService"] for e in entries] == ["s4", "s3", "s2"]


@pytest.mark.usefixtures("empty_journal")
def test_journal_off_records_nothing(settings, database, runner):
    app = create_app(settings.replace(journal=False), database=database)
    headers = _admin_headers(runner)
    with app.test_client() as client:
        client.post(GET_FEATURES, json=features_body())
        assert client.get("/_emulator/requests", headers=headers).json == {"requests": []}


@pytest.mark.usefixtures("empty_journal")
def test_a_failing_journal_never_fails_the_request(app, connection, runner):
    headers = _admin_headers(runner)
    connection.execute(text("ALTER TABLE emulator_journal RENAME TO emulator_journal_gone"))
    with app.test_client() as client:
        response = client.post(GET_FEATURES, json=features_body())
        assert response.status_code == 401  # the request's own answer, not a journal error
        assert client.get("/healthz").status_code == 200
    writer = app.extensions["tectonite.emulator.journal"]
    assert writer.flush() is True  # the write fails: logged and dropped, nothing raised
    assert writer.dropped == 1
    connection.execute(text("ALTER TABLE emulator_journal_gone RENAME TO emulator_journal"))
    with app.test_client() as client:
        assert client.get("/_emulator/requests", headers=headers).json == {"requests": []}


def _pending(index: int) -> Pending:
    return Pending(time=datetime.now(UTC), method="POST", path=GET_FEATURES, url_rule=GET_FEATURES,
                   view_args={}, body=b"{}", body_bytes=2, status=200, response=b"",
                   api_key_id=None, duration_ms=float(index))  # fmt: skip


class ChasedWriter(JournalWriter):
    """Requests keep arriving while each batch is being written (as under load)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, cap=100, background=False)
        self.batches: list[int] = []

    def _write(self, batch: list[Pending]) -> None:
        self.batches.append(len(batch))
        if len(self.batches) < 5:
            for index in range(2):
                self.submit(_pending(index))


def test_a_drain_writes_what_was_queued_then_waits_for_the_next_window(database):
    """Under load a drain that chased new arrivals wrote batches of two or three entries, one
    round trip each; it writes what was queued when it began and leaves the rest to the next
    batch window."""
    writer = ChasedWriter(database)
    for index in range(10):
        writer.submit(_pending(index))
    writer._drain()
    assert writer.batches == [10]
    writer._drain()
    assert writer.batches == [10, 2]

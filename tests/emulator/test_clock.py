"""The emulated clock: one "now" for ttl expiry, shared by every worker, moved by HTTP or CLI."""

from datetime import UTC, datetime, timedelta

import orjson

from app.emulator.clock import ClockState
from app.types import format_timestamp
from tests.emulator.conftest import GET_FEATURES, WITH_STATUS, features_body, wait_for

LAST_TXN = "user_last_transaction.amt"


def statuses_of(body):
    return {item["name"]: item["status"] for item in body["metadata"]["features"]}


def last_txn_statuses(emulator, key, count=16):
    """The status of the 31-day-old feature (ttl 30d) in `count` requests over every worker."""
    headers = {"Authorization": f"Tecton-key {key}"}

    def send(client):
        response = client.post(GET_FEATURES, json=features_body(**WITH_STATUS), headers=headers)
        assert response.status_code == 200, response.text
        return statuses_of(response.json())[LAST_TXN]

    return set(emulator.spread(count, send))


def test_freeze_and_advance_move_ttl_expiry_on_every_worker(fraud_live, emulator):
    key, times = fraud_live
    assert last_txn_statuses(emulator, key) == {"MISSING_DATA"}
    # 31-day-old row, 30-day ttl: two days back it was still fresh.
    back_then = times["recent"] - timedelta(days=2)
    clock = emulator.ok("POST", "/clock", json={"freezeAt": format_timestamp(back_then)})
    assert clock == {
        "now": format_timestamp(back_then),
        "frozen": True,
        "offsetSeconds": clock["offsetSeconds"],
    }
    assert -2 * 86400 - 3700 < clock["offsetSeconds"] < -2 * 86400 - 3500
    wait_for(lambda: last_txn_statuses(emulator, key) == {"PRESENT"}, timeout=1.5)
    assert last_txn_statuses(emulator, key, 32) == {"PRESENT"}

    advanced = emulator.ok("POST", "/clock", json={"advance": "2d"})
    assert advanced["now"] == format_timestamp(back_then + timedelta(days=2))
    wait_for(lambda: last_txn_statuses(emulator, key) == {"MISSING_DATA"}, timeout=1.5)

    reset = emulator.ok("POST", "/clock", json={"reset": True})
    assert reset["frozen"] is False and reset["offsetSeconds"] == 0
    assert last_txn_statuses(emulator, key) == {"MISSING_DATA"}


def test_a_frozen_clock_gives_the_same_body_every_time(fraud_live, emulator):
    key, _times = fraud_live
    emulator.ok("POST", "/clock", json={"freezeAt": "2026-06-01T12:00:00Z"})
    headers = {"Authorization": f"Tecton-key {key}"}

    def send(client):
        return client.post(GET_FEATURES, json=features_body(**WITH_STATUS), headers=headers).content

    wait_for(lambda: len(set(emulator.spread(8, send))) == 1, timeout=1.5)
    assert len(set(emulator.spread(24, send))) == 1


def test_resume_runs_on_from_the_frozen_instant(emulator):
    emulator.ok("POST", "/clock", json={"freezeAt": "2020-01-01T00:00:00Z"})
    resumed = emulator.ok("POST", "/clock", json={"resume": True})
    assert resumed["frozen"] is False
    now = datetime.fromisoformat(emulator.ok("GET", "/clock")["now"])
    assert datetime(2020, 1, 1, tzinfo=UTC) <= now < datetime(2020, 1, 1, 0, 1, tzinfo=UTC)
    # Advancing a running clock moves its offset.
    advanced = emulator.ok("POST", "/clock", json={"advance": "1h"})
    assert datetime.fromisoformat(advanced["now"]) >= now + timedelta(hours=1)


def test_bad_clock_bodies_are_400_naming_the_field_and_change_nothing(emulator):
    emulator.ok("POST", "/clock", json={"freezeAt": "2026-03-01T00:00:00Z"})
    cases = [
        ({"freezeAt": "yesterday"}, "freezeAt"),
        ({"advance": "-5m"}, "advance"),
        ({"advance": "ninety minutes"}, "advance"),
        ({"advanceSeconds": -1}, "advanceSeconds"),
        ({"resume": False}, "resume"),
        ({"tick": True}, "tick"),
        ({}, "exactly one"),
        ({"advance": "1h", "reset": True}, "exactly one"),
        ([], "JSON object"),
    ]
    for body, named in cases:
        response = emulator.call("POST", "/clock", json=body)
        assert response.status_code == 400, body
        error = response.json()
        assert error["code"] == 3 and named in error["message"], (body, error)
        assert error["error"] == error["message"]
    assert emulator.ok("GET", "/clock")["now"] == "2026-03-01T00:00:00Z"


def test_cli_twins_reach_the_running_server(committed_runner, emulator):
    out = committed_runner.ok("clock", "freeze", "2026-01-02T03:04:05Z").stdout
    assert "2026-01-02T03:04:05Z (frozen" in out
    assert emulator.ok("GET", "/clock")["now"] == "2026-01-02T03:04:05Z"
    committed_runner.ok("clock", "advance", "90m")
    shown = orjson.loads(committed_runner.ok("clock", "show", "--json").stdout)
    assert shown["now"] == "2026-01-02T04:34:05Z" and shown["frozen"] is True
    assert set(shown) == {"now", "frozen", "offsetSeconds"}
    assert emulator.ok("GET", "/clock")["now"] == "2026-01-02T04:34:05Z"
    committed_runner.ok("clock", "resume")
    assert orjson.loads(committed_runner.ok("clock", "show", "--json").stdout)["frozen"] is False
    committed_runner.ok("clock", "reset")
    assert emulator.ok("GET", "/clock")["offsetSeconds"] == 0
    bad = committed_runner.invoke("clock", "advance", "soon")
    assert bad.exit_code != 0 and "advance" in bad.output


def test_clock_state_arithmetic():
    frozen = ClockState(frozen_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert frozen.now() == datetime(2026, 1, 1, tzinfo=UTC)
    running = ClockState(offset_seconds=60)
    real = datetime(2026, 1, 1, tzinfo=UTC)
    assert running.now(real) == real + timedelta(minutes=1)

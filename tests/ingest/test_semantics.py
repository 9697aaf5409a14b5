"""Last-write-wins and idempotency under concurrency, in the writer and through a real server.

Every generated record's value is a function of (key, event time), so records that share a key
and an event time are identical and the outcome does not depend on which of them lands last:
the oracle is, per key, the newest event time and its value. A single ordered replay must reach
exactly that state, and so must concurrent, shuffled, duplicated replays.
"""

from __future__ import annotations

import http.client
import random
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson
import pytest

from app.store import ValueRow, entity_key, features_json, put_values
from tests.conftest import pg_connect
from tests.ingest import apply_definitions, create_key, stored, view_id

KEYS = 150
EVENTS_PER_KEY = 12
BASE = datetime(2026, 11, 1, tzinfo=UTC)


def value_for(key: int, moment: datetime) -> float:
    return key * 1000 + moment.minute + moment.second / 100


def generate(seed: int) -> list[tuple[int, datetime]]:
    """(key, event time) pairs with many repeated event times per key."""
    rng = random.Random(seed)
    events = []
    for key in range(KEYS):
        for _ in range(EVENTS_PER_KEY):
            # Only 6 distinct times per key: ties are frequent.
            events.append((key, BASE + timedelta(minutes=rng.randrange(6))))
    return events


def oracle(events: list[tuple[int, datetime]]) -> dict[str, tuple[str, dict[str, float]]]:
    newest: dict[int, datetime] = {}
    for key, moment in events:
        newest[key] = max(newest.get(key, moment), moment)
    return {
        entity_key([str(key)]): (
            moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            {"rate": value_for(key, moment)},
        )
        for key, moment in newest.items()
    }


def rows_for(view: int, events: list[tuple[int, datetime]]) -> list[ValueRow]:
    return [
        ValueRow(
            view, entity_key([str(key)]), moment, features_json({"rate": value_for(key, moment)})
        )
        for key, moment in events
    ]


@pytest.fixture
def committed_ws(committed_runner, tmp_path):
    apply_definitions(committed_runner, tmp_path, "prod")
    apply_definitions(committed_runner, tmp_path, "replay")
    return committed_runner


def test_concurrent_shuffled_replays_equal_one_ordered_replay(committed_ws, clean_database):
    engine = clean_database.engine
    with engine.connect() as connection:
        target = view_id(connection, "merchant_stats", "prod")
        reference = view_id(connection, "merchant_stats", "replay")
    events = generate(seed=5)

    # A single ordered replay, one record per statement, into another workspace.
    ordered = sorted(events, key=lambda e: e[1])
    with engine.begin() as connection:
        for row in rows_for(reference, ordered):
            put_values(connection, [row])

    # Several writers, each on its own connection, shuffled duplicated batches, twice over.
    def run_writers(seed: int) -> None:
        rows = rows_for(target, events * 2)
        random.Random(seed).shuffle(rows)
        batches = [rows[i : i + 40] for i in range(0, len(rows), 40)]
        writers = 4  # the engine's pool holds 5 connections
        start = threading.Barrier(writers, timeout=60)
        failures: list[BaseException] = []

        def work(index: int) -> None:
            try:
                with engine.connect() as connection:
                    start.wait()
                    for batch in batches[index::writers]:
                        with connection.begin():
                            put_values(connection, batch)
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures

    expected = oracle(events)
    run_writers(seed=1)
    assert stored(clean_database, "merchant_stats", "replay") == expected
    assert stored(clean_database, "merchant_stats", "prod") == expected
    run_writers(seed=2)  # replaying again, in another order, changes nothing
    assert stored(clean_database, "merchant_stats", "prod") == expected


def test_concurrent_api_writers_against_a_real_server(
    committed_ws, clean_database, server, database_url
):
    """8 keep-alive clients post shuffled 100-record requests; every 200 is readable at once."""
    key = create_key(committed_ws, "editor")
    recent = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    rng = random.Random(9)
    events = [
        (k, recent + timedelta(seconds=rng.randrange(8))) for k in range(200) for _ in range(8)
    ]
    records = [
        {
            "user_id": f"u{k}",
            "merchant_id": k,
            "amount": value_for(k, moment),
            "clicks": k,
            "tags": [],
            "ts": moment.isoformat(),
        }
        for k, moment in events * 2
    ]
    rng.shuffle(records)
    batches = [records[i : i + 100] for i in range(0, len(records), 100)]
    address = urlsplit(server.base_url)
    clients = 8
    start = threading.Barrier(clients, timeout=60)
    failures: list[str] = []

    def work(index: int) -> None:
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        reader = pg_connect(database_url)
        reader.autocommit = True
        try:
            start.wait()
            for batch in batches[index::clients]:
                payload = {
                    "workspace_name": "prod",
                    "dry_run": False,
                    "records": {"events": [{"record": r} for r in batch]},
                }
                conn.request(
                    "POST", "/ingest", orjson.dumps(payload), {"Authorization": f"Tecton-key {key}"}
                )
                response = conn.getresponse()
                answer = response.read()
                if response.status != 200:
                    failures.append(answer.decode())
                    return
                # Acknowledged means committed: the store already holds this batch or newer.
                newest: dict[str, str] = {}
                for record in batch:
                    k = entity_key([record["user_id"]])
                    newest[k] = max(newest.get(k, record["ts"]), record["ts"])
                rows = reader.execute(
                    "SELECT v.entity_key, v.event_time FROM online_values v "
                    "JOIN feature_views f ON f.id = v.feature_view_id "
                    "WHERE f.name = 'user_events' AND v.entity_key = ANY(%s)",
                    [list(newest)],
                ).fetchall()
                seen = dict(rows)
                for k, moment in newest.items():
                    if k not in seen or seen[k] < datetime.fromisoformat(moment):
                        failures.append(f"{k}: acknowledged {moment}, read {seen.get(k)}")
        finally:
            conn.close()
            reader.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]

    expected = {
        entity_key([f"u{k}"]): (ts, {"amount": v["rate"], "clicks": str(k), "tags": []})
        for k in range(200)
        for ts, v in [oracle([e for e in events if e[0] == k])[entity_key([str(k)])]]
    }
    assert stored(clean_database, "user_events", "prod") == expected

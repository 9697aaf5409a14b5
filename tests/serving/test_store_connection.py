"""The hot read on the production path: an app on a real engine (not bound to a test
transaction), reading committed data through the store's own per-thread autocommit connection.

Each request must be one round trip on that connection with no BEGIN/ROLLBACK around it, and a
connection the database killed must be replaced and the read retried without the caller
noticing. A regression in either fails here (the in-transaction tests cannot see them).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from psycopg import pq
from sqlalchemy import text

from app import create_app
from app.db import Database
from app.store import get_store
from app.store.connection import ThreadConnections
from tests.serving.conftest import SERVICE, seed_fraud

GET = "/api/v1/feature-service/get-features"
BATCH = "/api/v1/feature-service/get-features-batch"
BODY = {"params": {"workspaceName": "prod", "featureServiceName": SERVICE,
                   "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
                   "requestContextMap": {"amt": 100}}}  # fmt: skip


@pytest.fixture
def production_app(settings, clean_database, committed_runner, tmp_path) -> Iterator[Any]:
    """(app, auth headers): an app as `serve` builds it, on committed fraud data."""
    seed_fraud(committed_runner, clean_database, tmp_path)
    key = committed_runner.ok("api-key", "create", "--description", "p", "--workspace", "prod")
    database = Database.from_settings(settings)
    app = create_app(settings, database=database)
    try:
        yield app, {"Authorization": f"Tecton-key {key.stdout.strip()}"}
    finally:
        get_store(app).close()
        database.dispose()


def store_connection(app: Flask) -> psycopg.Connection[Any]:
    """This thread's store connection (the test client serves requests in this thread)."""
    connections = get_store(app).connections
    assert isinstance(connections, ThreadConnections)  # not a test connection
    return connections.cursor().connection


def traced(connection: psycopg.Connection[Any], action: Callable[[], None]) -> list[str]:
    """The libpq trace of what `action` sent on `connection`, one line per message."""
    with tempfile.TemporaryFile("w+") as trace:
        connection.pgconn.trace(trace.fileno())
        connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            action()
        finally:
            connection.pgconn.untrace()
        trace.seek(0)
        return [line for line in trace if line.startswith("F\t")]


def round_trips(sent: list[str]) -> int:
    """Client→server round trips: each Sync (extended protocol) or simple Query is one."""
    return sum(1 for line in sent if line.split("\t")[2].split()[0] in ("Sync", "Query"))


def test_a_read_is_one_statement_outside_any_transaction(production_app):
    app, auth = production_app
    client = app.test_client()
    assert client.post(GET, json=BODY, headers=auth).status_code == 200  # warm caches, prepare
    connection = store_connection(app)
    rows = [{"joinKeyMap": {"user_id": f"user_{i}", "merchant": "m1"},
             "requestContextMap": {"amt": 1}} for i in range(10)]  # fmt: skip
    batch = {"params": {**BODY["params"], "requestData": rows}}
    batch["params"].pop("joinKeyMap")
    batch["params"].pop("requestContextMap")
    for path, body in ((GET, BODY), (BATCH, batch)):

        def request(path: str = path, body: dict[str, Any] = body) -> None:
            assert client.post(path, json=body, headers=auth).status_code == 200

        sent = traced(connection, request)
        assert round_trips(sent) == 1, sent
        assert not [line for line in sent if "BEGIN" in line or "ROLLBACK" in line], sent
        assert connection.info.transaction_status == pq.TransactionStatus.IDLE


def test_a_killed_store_connection_is_replaced_and_the_read_retried(production_app, clean_database):
    app, auth = production_app
    client = app.test_client()
    first = client.post(GET, json=BODY, headers=auth)
    assert first.status_code == 200
    killed_pid = store_connection(app).info.backend_pid
    with clean_database.read() as admin:  # autocommit: each poll sees a fresh snapshot
        terminate = text("SELECT pg_terminate_backend(:pid)")
        assert admin.execute(terminate, {"pid": killed_pid}).scalar()
        alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        deadline = time.monotonic() + 10
        while admin.execute(alive, {"pid": killed_pid}).scalar():
            assert time.monotonic() < deadline, "the backend did not exit"
            time.sleep(0.02)  # polling the condition above, with its deadline

    again = client.post(GET, json=BODY, headers=auth)
    assert again.status_code == 200, again.json
    assert again.json == first.json
    assert store_connection(app).info.backend_pid != killed_pid

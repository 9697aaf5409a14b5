"""Serving, ingest and the CLI through a real PgBouncer in transaction mode (SPEC §15).

PgBouncer 1.18 (Debian's) has no protocol-level prepared statements and refuses the `options`
startup parameter: with TECTONITE_DATABASE_POOLER=pgbouncer Tectonite prepares nothing, sends
no options, sets the read deadline per statement, and LISTENs on DATABASE_LISTEN_URL. Three
server connections serve every client connection here, so a statement prepared on one of them
would be missing on the next and fail the run.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.store.connection import ThreadConnections
from tests.conftest import start_server
from tests.repo.helpers import write_repo
from tests.scale.conftest import DEFINITIONS, Bouncer, OwnCli
from tests.serving.test_store_connection import round_trips, traced

GET = "/api/v1/feature-service/get-features"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def pooled_settings(settings: Settings, pgbouncer: Bouncer) -> Settings:
    return settings.replace(database_url=pgbouncer.url, database_pooler="pgbouncer")


def features(client: httpx.Client, key: str, user: str) -> dict[str, Any]:
    body = {"params": {"workspaceName": "pgb", "featureServiceName": "svc",
                       "joinKeyMap": {"user_id": user},
                       "metadataOptions": {"includeNames": True}}}  # fmt: skip
    response = client.post(GET, json=body, headers={"Authorization": f"Tecton-key {key}"})
    assert response.status_code == 200, response.text
    payload = response.json()
    names = [f["name"] for f in payload["metadata"]["features"]]
    return dict(zip(names, payload["result"]["features"], strict=True))


def test_serving_ingest_and_the_cli_through_pgbouncer(
    pgbouncer, pooled_settings, settings, clean_database, database_url, tmp_path
):
    database = make_url(database_url).database or ""
    before = pgbouncer.transactions(database)
    cli = OwnCli(pooled_settings)  # the CLI as a user runs it: its own engine, via PgBouncer
    cli.ok("workspace", "create", "pgb")
    path = write_repo(tmp_path, DEFINITIONS)
    cli.ok("apply", "-f", str(path), "--workspace", "pgb", "--yes")
    key = cli.ok("api-key", "create", "--description", "pgb", "--admin").stdout.strip()
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    rows = "".join(f"u{i},{i}.5,{stamp(hour_ago)}\n" for i in range(20))
    later = "".join(f"u{i},{i}.5,{stamp(hour_ago + timedelta(minutes=1))}\n" for i in range(20))
    (tmp_path / "last.csv").write_text("user_id,amount,timestamp\n" + rows)
    # Two events per user (continuous mode keeps one per key and timestamp).
    (tmp_path / "events.csv").write_text("user_id,amount,ts\n" + rows + later)
    cli.ok(
        "ingest", "--workspace", "pgb", "--feature-view", "user_last", str(tmp_path / "last.csv")
    )
    cli.ok("ingest", "--workspace", "pgb", "--feature-view", "user_totals",
           str(tmp_path / "events.csv"))  # fmt: skip

    server = start_server(
        {
            "DATABASE_URL": pgbouncer.url,
            "DATABASE_LISTEN_URL": database_url,  # LISTEN needs a session: direct
            "TECTONITE_DATABASE_POOLER": "pgbouncer",
            "WEB_CONCURRENCY": "2",
            "TECTONITE_THREADS": "4",
            "TECTONITE_SECRET": settings.secret or "",
            "TECTONITE_DATA_DIR": str(settings.data_dir),
        }
    )
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            # Many requests on many connections, each statement on whichever server
            # connection PgBouncer hands out.
            def read(i: int) -> dict[str, Any]:
                with httpx.Client(base_url=server.base_url, timeout=10) as own:
                    return features(own, key, f"u{i % 20}")

            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(read, range(80)))
            for i, result in enumerate(results):
                assert result["user_last.amount"] == i % 20 + 0.5
                assert result["user_totals.amount_sum"] == 2 * (i % 20 + 0.5)

            for seconds in (3, 2, 1):
                moment = datetime.now(UTC) - timedelta(seconds=seconds)
                record = {"user_id": "u3", "amount": 100.0, "ts": stamp(moment)}
                ingested = client.post(
                    "/ingest",
                    json={
                        "workspace_name": "pgb",
                        "dry_run": False,
                        "records": {"events": [{"record": record}]},
                    },
                    headers={"Authorization": f"Tecton-key {key}"},
                )
                assert ingested.status_code == 200, ingested.text
            now = features(client, key, "u3")
            assert now["user_last.amount"] == 100.0
            assert now["user_totals.amount_sum"] == 2 * 3.5 + 300.0

            # A change applied through PgBouncer reaches the server's listener (direct).
            write_repo(tmp_path, DEFINITIONS.replace("name: amount_sum", "name: amount_total"))
            cli.ok("apply", "-f", str(path), "--workspace", "pgb", "--yes")
            deadline = time.monotonic() + 5
            while "user_totals.amount_total" not in features(client, key, "u3"):
                assert time.monotonic() < deadline, "the server kept the old definitions"
    finally:
        server.stop()
    assert server.process.returncode == 0, "".join(server.output)
    assert "prepared statement" not in "".join(server.output)
    assert pgbouncer.transactions(database) - before >= 80  # the traffic did go through it


def test_the_read_deadline_holds_behind_pgbouncer_and_leaks_nothing(pgbouncer):
    """The deadline travels with the statement (SET LOCAL in its implicit transaction), so
    it cancels a slow read, and the server connection goes back to the pool without it."""
    url = pgbouncer.url.replace("postgresql+psycopg://", "postgresql://")
    reads = ThreadConnections(url, statement_timeout_ms=150, pooled=True)
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            reads.fetch("SELECT pg_sleep(%s)", (2,))
        assert time.monotonic() - started < 1.5
        assert reads.fetch("SELECT %s::int[]", ([1, 2],)) == [([1, 2],)]
        # Still one round trip, and nothing prepared (a simple query: no Parse message).
        sent = traced(reads.cursor().connection, lambda: reads.fetch("SELECT %s::int", (1,)))
        assert round_trips(sent) == 1
        assert not [line for line in sent if "Parse" in line], sent
    finally:
        reads.close()
    # Every server connection of the pool (3) is free of the setting.
    others = [psycopg.connect(url, autocommit=True, prepare_threshold=None) for _ in range(3)]
    try:
        assert {c.execute("SHOW statement_timeout").fetchone()[0] for c in others} == {"0"}
    finally:
        for connection in others:
            connection.close()

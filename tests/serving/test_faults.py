"""The serving path survives its database connections being dropped."""

import httpx
from sqlalchemy import text

from tests.serving.conftest import SERVICE

BODY = {"params": {"workspaceName": "prod", "featureServiceName": SERVICE,
                   "joinKeyMap": {"user_id": "user_1", "merchant": "m1"},
                   "requestContextMap": {"amt": 1.0}}}  # fmt: skip


def test_reads_reconnect_after_their_connections_are_killed(live, clean_database):
    server, key = live
    headers = {"Authorization": f"Tecton-key {key}"}
    url = f"{server.api_url}/v1/feature-service/get-features"
    with httpx.Client(timeout=10) as client:
        # Enough concurrent-ish traffic that several worker threads hold store connections.
        for _ in range(40):
            assert client.post(url, json=BODY, headers=headers).status_code == 200
        with clean_database.engine.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'tectonite-serving' AND datname = current_database()"
                )
            ).scalar_one()
        assert killed >= 1
        statuses = [client.post(url, json=BODY, headers=headers).status_code for _ in range(40)]
    assert statuses == [200] * 40

"""Read replicas (SPEC §15): a real streaming replica of a throwaway primary serves the
feature-value reads; writes, definitions, keys and the emulator's state stay on the primary;
a replica that lags more than TECTONITE_REPLICA_MAX_LAG, or fails, is skipped for the primary.

Replay on the replica is paused to make it lag on purpose: a read that returns the value from
before the pause can only have come from the replica.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask

from app import create_app
from app.config import Settings
from app.db import get_database
from app.store import get_store
from app.store.replicas import ReplicaRouter
from tests.repo.helpers import write_repo
from tests.scale.conftest import DEFINITIONS, OwnCli, Replicated

GET = "/api/v1/feature-service/get-features"


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.01)


def app_with_replica(cluster: Replicated, tmp_path: Path, max_lag_s: float) -> Flask:
    settings = Settings(
        replica_max_lag_s=max_lag_s,
        data_dir=tmp_path,
        threads=2,
        secret="replica-test-secret",
        listen_for_changes=False,
    ).replace(database_url=cluster.primary_url, database_replica_urls=(cluster.replica_url,))
    return create_app(settings)


def close(app: Flask) -> None:
    get_store(app).close()
    get_database(app).dispose()


def monitor_of(app: Flask) -> Any:
    router = get_store(app).connections
    assert isinstance(router, ReplicaRouter)
    return router.monitor


@pytest.fixture(scope="module")
def setup(replicated: Replicated, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The workspace and an admin key on the primary; two apps on primary + replica: one that
    tolerates a minute of lag, one that tolerates 0.3 s."""
    directory = tmp_path_factory.mktemp("replica")
    settings = Settings(data_dir=directory, secret="replica-test-secret").replace(
        database_url=replicated.primary_url
    )
    cli = OwnCli(settings)
    cli.ok("workspace", "create", "rep")
    cli.ok("apply", "-f", str(write_repo(directory, DEFINITIONS)), "--workspace", "rep", "--yes")
    key = cli.ok("api-key", "create", "--description", "r", "--admin").stdout.strip()
    patient = app_with_replica(replicated, directory, 60)
    strict = app_with_replica(replicated, directory, 0.3)
    try:
        yield cli, {"Authorization": f"Tecton-key {key}"}, patient, strict
    finally:
        close(patient)
        close(strict)


def ingest(app: Flask, auth: dict[str, str], amount: float) -> None:
    record = {"user_id": "u1", "amount": amount, "ts": datetime.now(UTC).isoformat()}
    body = {"workspace_name": "rep", "dry_run": False, "records": {"events": [{"record": record}]}}
    response = app.test_client().post("/ingest", json=body, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)


def amount(app: Flask, auth: dict[str, str], service: str = "svc") -> Any:
    body = {"params": {"workspaceName": "rep", "featureServiceName": service,
                       "joinKeyMap": {"user_id": "u1"}}}  # fmt: skip
    response = app.test_client().post(GET, json=body, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["result"]["features"][0]


def healthy(app: Flask) -> bool:
    lag = monitor_of(app).lags[0]
    return lag is not None and lag <= monitor_of(app).max_lag_s


def caught_up(cluster: Replicated) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with psycopg.connect(cluster.primary_url, autocommit=True) as primary:
        position = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with psycopg.connect(cluster.replica_url, autocommit=True) as replica:
        wait_for(lambda: replica.execute(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (position,)
        ).fetchone()[0])  # fmt: skip


def replay(cluster: Replicated, action: str) -> None:
    with psycopg.connect(cluster.replica_url, autocommit=True) as replica:
        replica.execute(f"SELECT pg_wal_replay_{action}()")


def test_reads_go_to_the_replica_and_a_lagging_one_is_skipped(replicated, setup, tmp_path):
    cli, auth, patient, strict = setup
    ingest(patient, auth, 1.0)
    caught_up(replicated)
    for app in (patient, strict):  # both measured the replica and found it in step
        wait_for(lambda app=app: amount(app, auth) == 1.0 and healthy(app))

    replay(replicated, "pause")
    try:
        ingest(patient, auth, 2.0)  # acknowledged: committed on the primary
        assert amount(patient, auth) == 1.0  # the replica's value: the read went there
        # The strict app notices the lag within its limit (plus a check) and reads the primary.
        started = time.monotonic()
        wait_for(lambda: amount(strict, auth) == 2.0, timeout=3)
        assert time.monotonic() - started < 1.5
        assert not healthy(strict)

        # Keys, definitions and emulator state are read on the primary, lag or not.
        key = cli.ok("api-key", "create", "--description", "new", "--admin").stdout.strip()
        new_auth = {"Authorization": f"Tecton-key {key}"}
        write_repo(tmp_path, DEFINITIONS + "  - name: svc2\n    features: [user_last]\n")
        cli.ok("apply", "-f", str(tmp_path / "features.yaml"), "--workspace", "rep", "--yes")
        assert amount(patient, new_auth, "svc2") == 1.0  # new key, new service; replica value
        client = patient.test_client()
        frozen = client.post("/_emulator/clock", json={"freezeAt": "2030-01-01T00:00:00Z"},
                             headers=auth)  # fmt: skip
        assert frozen.status_code == 200, frozen.get_data(as_text=True)
        assert client.get("/_emulator/clock", headers=auth).get_json()["frozen"] is True
        reset = client.post("/_emulator/clock", json={"reset": True}, headers=auth)
        assert reset.status_code == 200
    finally:
        replay(replicated, "resume")
    caught_up(replicated)
    assert amount(patient, auth) == 2.0  # the replica has it now
    wait_for(lambda: healthy(strict))
    assert amount(strict, auth) == 2.0


def test_a_failing_replica_is_skipped_at_once(replicated, setup):
    _cli, auth, patient, _strict = setup
    ingest(patient, auth, 3.0)
    caught_up(replicated)
    wait_for(lambda: healthy(patient))
    assert amount(patient, auth) == 3.0
    replicated.replica.stop("immediate")
    try:
        # The first read after the failure is answered (by the primary), and so is every one.
        assert [amount(patient, auth) for _ in range(5)] == [3.0] * 5
        wait_for(lambda: monitor_of(patient).lags[0] is None)
        ingest(patient, auth, 4.0)
        assert amount(patient, auth) == 4.0
    finally:
        replicated.replica.start()
    # Back in service once the monitor finds it well again.
    wait_for(lambda: healthy(patient), timeout=10)
    caught_up(replicated)
    assert amount(patient, auth) == 4.0

"""A database that hangs (SIGSTOP: it neither answers nor refuses) costs a serving request no
more than its 2 s deadline, and serving recovers the moment the database does.

The frozen PostgreSQL is a throwaway cluster this module starts and owns (never the suite's
shared one): its postmaster and every backend are stopped, so open connections and new ones
both hang, as they would behind a network partition.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import migrate
from app.config import Settings
from app.db import Database
from tests.conftest import Cli, start_server
from tests.repo.helpers import MINIMAL, write_repo
from tests.serving.helpers import put_values

GET = "/api/v1/feature-service/get-features"
BODY = {"params": {"workspaceName": "prod", "featureServiceName": "svc",
                   "joinKeyMap": {"user_id": "u1"}}}  # fmt: skip


@dataclass
class Cluster:
    url: str  # the seeded database on it
    postmaster: psutil.Process
    key: str


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[Cluster]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    server = pgserver.get_server(
        Path(tempfile.mkdtemp(prefix="tectonite-frozen-pg-")), cleanup_mode="delete"
    )
    try:
        root = Settings().replace(database_url=server.get_uri()).sqlalchemy_url
        admin = create_engine(root, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text('CREATE DATABASE "frozen"'))
        admin.dispose()
        url = make_url(root).set(database="frozen").render_as_string(hide_password=False)
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        own = settings.replace(database_url=url)
        database = Database.from_settings(own)
        runner = Cli(own, database)
        runner.ok("workspace", "create", "prod")
        repo = write_repo(Path(tempfile.mkdtemp(prefix="tectonite-frozen-repo-")), MINIMAL)
        runner.ok("apply", "-f", str(repo), "--workspace", "prod", "--yes")
        put_values(database, "prod", "user_stats", ["u1"], _recent(), {"clicks": 7, "score": 0.5})
        key = runner.ok("api-key", "create", "--description", "k", "--workspace", "prod")
        database.dispose()
        pid = server.get_pid()
        assert pid is not None
        yield Cluster(url, psutil.Process(pid), key.stdout.strip())
    finally:
        server.cleanup()


def _recent():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@contextmanager
def frozen(postmaster: psutil.Process) -> Iterator[None]:
    """SIGSTOP the postmaster and all its backends; SIGCONT them all on the way out."""
    stopped = [postmaster, *postmaster.children(recursive=True)]
    assert all(p.pid != os.getpid() for p in stopped)
    for process in stopped:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in stopped:
            process.send_signal(signal.SIGCONT)


def test_serving_answers_by_its_deadline_while_the_database_hangs(cluster, server_name, settings):
    server = start_server(
        {
            "TECTONITE_SERVER": server_name,
            "DATABASE_URL": cluster.url,
            "WEB_CONCURRENCY": "1",
            "TECTONITE_THREADS": "2",
            "TECTONITE_SECRET": settings.secret or "",
            "TECTONITE_DATA_DIR": str(settings.data_dir),
            "TECTONITE_JOURNAL": "off",
        }
    )
    headers = {"Authorization": f"Tecton-key {cluster.key}"}
    try:
        with httpx.Client(base_url=server.base_url, timeout=15) as http:
            # Warm up: both request threads hold a store connection and the caches are filled.
            # (A fresh process's first requests may miss the deadline on a loaded machine.)
            served = 0
            warm_until = time.monotonic() + 30
            while served < 4 and time.monotonic() < warm_until:
                warm = http.post(GET, json=BODY, headers=headers)
                served = served + 1 if warm.status_code == 200 else 0
            assert served == 4, warm.text
            assert warm.json() == {"result": {"features": ["7", 0.5]}}

            with frozen(cluster.postmaster):
                for _ in range(3):  # a hung statement, then connects that cannot finish
                    started = time.monotonic()
                    response = http.post(GET, json=BODY, headers=headers)
                    elapsed = time.monotonic() - started
                    assert (response.status_code, response.json()["code"]) in ((504, 4), (503, 14))
                    assert elapsed < 3.0, elapsed  # the 2 s deadline, not as long as the freeze
                started = time.monotonic()
                assert http.get("/healthz").status_code == 200
                ready = http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["code"] == 14
                assert time.monotonic() - started < 3.0

            # Recovered at once: the first request after the database wakes up is served.
            recovered = http.post(GET, json=BODY, headers=headers)
            assert recovered.status_code == 200, recovered.text
            assert recovered.json() == {"result": {"features": ["7", 0.5]}}
            assert http.get("/readyz").status_code == 200
    finally:
        assert server.stop() == 0

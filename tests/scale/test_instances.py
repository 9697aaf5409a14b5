"""Two `tectonite serve` instances on one database (one on granian, one on gunicorn): every
piece of per-process state is the same on both within one second of a change made on either
or by the CLI (SPEC §15, §10): definitions, keys and roles, the emulator clock, fault rules,
the request journal and failed-authentication throttling.

Each instance runs one worker, so every request to an instance meets the same process and a
round that finds the new state on both instances has seen every process.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from auth.throttle import FAILED_ATTEMPTS_LIMIT
from tests.conftest import ServerProcess, start_server
from tests.repo.helpers import MINIMAL, write_repo

PROPAGATION_SECONDS = 1.0
METADATA = "/api/v1/feature-service/metadata"


@pytest.fixture(scope="module")
def instances(database_url, settings) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for server in ("granian", "gunicorn"):
            started.append(
                start_server(
                    {
                        "TECTONITE_SERVER": server,
                        "DATABASE_URL": database_url,
                        "WEB_CONCURRENCY": "1",
                        "TECTONITE_THREADS": "4",
                        "TECTONITE_SECRET": settings.secret or "",
                        "TECTONITE_DATA_DIR": str(settings.data_dir),
                    }
                )
            )
        assert started[0].base_url != started[1].base_url
        yield started
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def admin(committed_runner) -> dict[str, str]:
    key = committed_runner.ok("api-key", "create", "--description", "i", "--admin").stdout.strip()
    return {"Authorization": f"Tecton-key {key}"}


def call(server: ServerProcess, method: str, path: str, headers: dict[str, str],
         **kwargs: Any) -> httpx.Response:  # fmt: skip
    return httpx.request(method, server.base_url + path, headers=headers, timeout=10, **kwargs)


def metadata(server: ServerProcess, headers: dict[str, str], workspace: str,
             service: str = "svc") -> httpx.Response:  # fmt: skip
    body = {"params": {"workspaceName": workspace, "featureServiceName": service}}
    return call(server, "POST", METADATA, headers, json=body)


def converges(instances: list[ServerProcess], check: Callable[[ServerProcess], bool]) -> float:
    """Poll every instance until `check` holds on all of them in one round; returns how long
    after the call the first such round began. Fails if that is more than the bound."""
    changed_at = time.monotonic()
    deadline = changed_at + 10
    while time.monotonic() < deadline:
        round_started = time.monotonic()
        if all(check(server) for server in instances):
            took = round_started - changed_at
            assert took <= PROPAGATION_SECONDS, f"consistent only after {took:.2f} s"
            return took
    raise AssertionError("the instances did not agree within 10 s")


def test_applied_definitions_reach_both_instances(instances, committed_runner, admin, tmp_path):
    committed_runner.ok("workspace", "create", "inst_defs")
    path = write_repo(tmp_path, MINIMAL)
    committed_runner.ok("apply", "-f", str(path), "--workspace", "inst_defs", "--yes")

    def score_type(server: ServerProcess) -> Any:
        response = metadata(server, admin, "inst_defs")
        assert response.status_code == 200, response.text
        return {f["name"]: f["dataType"] for f in response.json()["featureValues"]}[
            "user_stats.score"
        ]

    assert [score_type(s) for s in instances] == [{"type": "float64"}] * 2  # now cached
    write_repo(
        tmp_path, MINIMAL.replace("{name: score, type: Float64}", "{name: score, type: Int64}")
    )
    committed_runner.ok("apply", "-f", str(path), "--workspace", "inst_defs", "--yes")
    converges(instances, lambda s: score_type(s) == {"type": "int64"})

    committed_runner.ok("workspace", "delete", "inst_defs", "--yes")
    converges(instances, lambda s: metadata(s, admin, "inst_defs").status_code == 404)


def test_keys_and_roles_reach_both_instances(instances, committed_runner, admin, tmp_path):
    for name in ("inst_a", "inst_b"):
        committed_runner.ok("workspace", "create", name)
        committed_runner.ok("apply", "-f", str(write_repo(tmp_path / name, MINIMAL)),
                            "--workspace", name, "--yes")  # fmt: skip
    key = committed_runner.ok(
        "api-key", "create", "--description", "i", "--workspace", "inst_a"
    ).stdout.strip()
    key_id = key.split("_")[1]
    headers = {"Authorization": f"Tecton-key {key}"}
    # A key created a moment ago works everywhere; it has no grant on inst_b.
    converges(instances, lambda s: metadata(s, headers, "inst_a").status_code == 200)
    assert [metadata(s, headers, "inst_b").status_code for s in instances] == [403, 403]
    listed = orjson.loads(committed_runner.ok("api-key", "list", "--json").stdout)
    account = next(k["service_account_id"] for k in listed if k["id"] == key_id)

    committed_runner.ok("access-control", "assign-role", "-r", "consumer", "-s", account,
                        "-w", "inst_b")  # fmt: skip
    converges(instances, lambda s: metadata(s, headers, "inst_b").status_code == 200)
    committed_runner.ok("access-control", "unassign-role", "-r", "consumer", "-s", account,
                        "-w", "inst_a")  # fmt: skip
    converges(instances, lambda s: metadata(s, headers, "inst_a").status_code == 403)
    committed_runner.ok("api-key", "delete", key_id)
    converges(instances, lambda s: metadata(s, headers, "inst_b").status_code == 401)


def test_the_emulator_clock_is_one_clock(instances, admin):
    first, second = instances
    try:
        frozen = call(
            first, "POST", "/_emulator/clock", admin, json={"freezeAt": "2031-02-03T04:05:06Z"}
        )
        assert frozen.status_code == 200, frozen.text

        def shows(now: str) -> Callable[[ServerProcess], bool]:
            return lambda s: call(s, "GET", "/_emulator/clock", admin).json()["now"].startswith(now)

        converges(instances, shows("2031-02-03T04:05:06"))
        advanced = call(second, "POST", "/_emulator/clock", admin, json={"advance": "90m"})
        assert advanced.status_code == 200, advanced.text
        converges(instances, shows("2031-02-03T05:35:06"))
    finally:
        call(first, "POST", "/_emulator/clock", admin, json={"reset": True})


def test_fault_rules_reach_both_instances_and_times_is_exact(
    instances, committed_runner, admin, tmp_path
):
    committed_runner.ok("workspace", "create", "inst_faults")
    committed_runner.ok("apply", "-f", str(write_repo(tmp_path, MINIMAL)),
                        "--workspace", "inst_faults", "--yes")  # fmt: skip
    first, second = instances
    assert [metadata(s, admin, "inst_faults").status_code for s in instances] == [200, 200]
    try:
        rule = {"endpoint": "metadata", "workspace": "inst_faults", "status": 503}
        assert call(first, "POST", "/_emulator/faults", admin, json=rule).status_code == 200
        converges(instances, lambda s: metadata(s, admin, "inst_faults").status_code == 503)
        assert call(second, "DELETE", "/_emulator/faults", admin).status_code == 200
        converges(instances, lambda s: metadata(s, admin, "inst_faults").status_code == 200)

        # `times` counts across instances: three hits in all, wherever they land.
        rule = {"endpoint": "metadata", "workspace": "inst_faults", "status": 500, "times": 3}
        assert call(second, "POST", "/_emulator/faults", admin, json=rule).status_code == 200
        hits, deadline = 0, time.monotonic() + 10
        while hits < 3 and time.monotonic() < deadline:
            for server in instances:
                hits += metadata(server, admin, "inst_faults").status_code == 500
        assert hits == 3
        assert [metadata(instances[i % 2], admin, "inst_faults").status_code
                for i in range(10)] == [200] * 10  # fmt: skip
        assert call(first, "GET", "/_emulator/faults", admin).json()["faults"] == []
    finally:
        call(first, "DELETE", "/_emulator/faults", admin)


def test_the_journal_holds_the_requests_of_both_instances(instances, admin):
    first, second = instances
    service = f"journal_{random.randrange(10**9)}"
    for server in (first, second, second):
        assert metadata(server, admin, "nowhere", service).status_code == 404

    def journaled(count: int) -> Callable[[ServerProcess], bool]:
        def check(server: ServerProcess) -> bool:
            params = {"featureService": service, "limit": 100}
            found = call(server, "GET", "/_emulator/requests", admin, params=params)
            return len(found.json()["requests"]) == count

        return check

    converges(instances, journaled(3))
    assert call(second, "DELETE", "/_emulator/requests", admin).status_code == 200
    converges(instances, journaled(0))


def test_failed_authentication_is_throttled_across_instances(instances):
    """Failures from one client count together on both instances: the limit holds exactly."""
    source = f"127.{random.randint(1, 250)}.{random.randint(0, 255)}.{random.randint(2, 250)}"
    clients = [
        httpx.Client(
            base_url=s.base_url, timeout=10, transport=httpx.HTTPTransport(local_address=source)
        )
        for s in instances
    ]
    bad = {"Authorization": "Tecton-key tecto_nope"}
    try:
        statuses = [
            clients[i % 2].post(METADATA, content=b"{}", headers=bad).status_code
            for i in range(FAILED_ATTEMPTS_LIMIT + 20)
        ]
    finally:
        for client in clients:
            client.close()
    first_throttled = statuses.index(429)
    # A fixed window may end during the run and let at most one more failure through.
    assert FAILED_ATTEMPTS_LIMIT <= first_throttled <= FAILED_ATTEMPTS_LIMIT + 1, statuses
    assert set(statuses[:first_throttled]) == {401}
    assert set(statuses[first_throttled:]) == {429}

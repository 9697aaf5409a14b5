"""An admin client on the session's real server (two workers), reset after every test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.serving.conftest import SERVICE, seed_fraud

GET_FEATURES = "/api/v1/feature-service/get-features"


def features_body(user: str = "user_1", **params: Any) -> dict[str, Any]:
    return {"params": {"workspaceName": "prod", "featureServiceName": SERVICE,
                       "joinKeyMap": {"user_id": user, "merchant": "m1"},
                       "requestContextMap": {"amt": 1.0}, **params}}  # fmt: skip


WITH_STATUS = {"metadataOptions": {"includeNames": True, "includeServingStatus": True,
                                   "includeEffectiveTimes": True}}  # fmt: skip


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(0.02)


class Emulator:
    """`/_emulator` with an admin key, plus helpers to spread requests over every worker."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url
        self.admin_headers = {"Authorization": f"Tecton-key {admin_key}"}
        self.http = httpx.Client(base_url=base_url, headers=self.admin_headers, timeout=10)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/_emulator{path}", **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def journal(self, count: int, **params: Any) -> list[dict[str, Any]]:
        """The journal once it holds at least `count` entries matching `params`."""

        def entries() -> list[dict[str, Any]] | None:
            found = self.ok("GET", "/requests", params={"limit": 1000, **params})["requests"]
            return found if len(found) >= count else None

        result: list[dict[str, Any]] = wait_for(entries)
        return result

    def spread(self, count: int, send: Callable[[httpx.Client], Any]) -> list[Any]:
        """`count` calls, 8 at a time, each on its own connection (so any worker may take it)."""

        def one(_index: int) -> Any:
            with httpx.Client(base_url=self.base_url, timeout=10) as client:
                return send(client)

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, range(count)))

    def restore(self) -> None:
        self.ok("POST", "/clock", json={"reset": True})
        self.ok("DELETE", "/faults")
        self.ok("DELETE", "/requests")


@pytest.fixture
def admin_key(committed_runner) -> str:
    result = committed_runner.ok("api-key", "create", "--description", "tests", "--admin")
    return str(result.stdout.strip())


@pytest.fixture
def emulator(server, admin_key) -> Iterator[Emulator]:
    client = Emulator(server.base_url, admin_key)
    client.restore()
    yield client
    client.restore()
    client.http.close()


@pytest.fixture
def fraud_live(committed_runner, clean_database, tmp_path, server):
    """The fraud workspace committed on the real server: (consumer key, seeding times)."""
    times = seed_fraud(committed_runner, clean_database, tmp_path)
    key = committed_runner.ok("api-key", "create", "--description", "e2e", "--workspace", "prod")
    return key.stdout.strip(), times

"""A realtime transform cannot stop the server: whatever it raises answers 400, one that runs
past the request deadline answers 504 at the deadline, and nothing else waits on it.

Real servers (granian and gunicorn, the session's `server`) and transforms applied from a
feature repository, as a user would write them.
"""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from app.errors import DeadlineExceeded
from app.serving.transform_pool import TransformPool, TransformTimedOut
from tests.repo.helpers import write_repo

DEFINITIONS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
feature_views:
  - name: user_stats
    entities: [user]
    features: [{name: clicks, type: Int64}]
realtime_feature_views:
  - name: misbehave
    sources: [{request: req, schema: [{name: mode, type: String}]}]
    features: [{name: out, type: String}]
    transform: transforms.py:misbehave
feature_services:
  - name: plain
    features: [user_stats]
  - name: risky
    features: [misbehave]
"""

TRANSFORMS = """
import time


class Unprintable(Exception):
    def __str__(self):
        raise SystemExit(3)


def misbehave(req):
    mode = req["mode"]
    if mode.startswith("exit"):
        raise SystemExit(int(mode[4:]))
    if mode == "interrupt":
        raise KeyboardInterrupt
    if mode == "generator_exit":
        raise GeneratorExit("closing")
    if mode == "base":
        raise BaseException("the base of all")
    if mode == "value":
        raise ValueError("bad value")
    if mode == "unprintable":
        raise Unprintable()
    if mode == "spin":
        while True:
            pass
    if mode.startswith("sleep"):
        marker = mode.partition(":")[2]
        try:
            time.sleep(6)
        finally:  # tells the test this transform has ended (it is asked to stop past 2 s)
            if marker:
                open(marker, "w").close()
    return {"out": mode}
"""
SLEEP_SECONDS = 6

GET = "/api/v1/feature-service/get-features"


@pytest.fixture
def risky(committed_runner, tmp_path, server):
    """The session's real server with the misbehaving transform applied; (base URL, headers)."""
    committed_runner.ok("workspace", "create", "rt")
    path = write_repo(tmp_path, DEFINITIONS, TRANSFORMS)
    committed_runner.ok("apply", "-f", str(path), "--workspace", "rt", "--yes")
    key = committed_runner.ok("api-key", "create", "--description", "rt", "--workspace", "rt")
    return server, {"Authorization": f"Tecton-key {key.stdout.strip()}"}


def realtime(mode: str) -> dict:
    return {
        "params": {
            "workspaceName": "rt",
            "featureServiceName": "risky",
            "requestContextMap": {"mode": mode},
        }
    }


PLAIN = {"params": {"workspaceName": "rt", "featureServiceName": "plain",
                    "joinKeyMap": {"user_id": "u1"}}}  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("exit0", "SystemExit: 0"),
        ("exit1", "SystemExit: 1"),
        ("exit3", "SystemExit: 3"),
        ("interrupt", "KeyboardInterrupt"),
        ("generator_exit", "GeneratorExit: closing"),
        ("base", "BaseException: the base of all"),
        ("value", "ValueError: bad value"),
        ("unprintable", "Unprintable"),
    ],
)
def test_whatever_a_transform_raises_answers_400_and_the_server_keeps_serving(risky, mode, message):
    server, headers = risky
    seen = len(server.output)
    with httpx.Client(base_url=server.api_url.removesuffix("/api"), timeout=10) as http:
        response = http.post(GET, json=realtime(mode), headers=headers)
        assert response.status_code == 400, response.text
        expected = f"{message} (when evaluating UDF misbehave)"
        assert response.json() == {"error": expected, "code": 3, "message": expected}
        # The same worker processes keep answering (no worker died, none was replaced).
        for _ in range(4):
            ok = http.post(GET, json=realtime("fine"), headers=headers)
            assert ok.status_code == 200, ok.text
            assert ok.json() == {"result": {"features": ["fine"]}}
    assert server.process.poll() is None
    output = "".join(server.output[seen:])  # what the server logged during this test
    # gunicorn's and granian's words for a worker that died or was replaced.
    for sign in (
        "Worker failed to boot",
        "exited with code",
        "Worker exiting",
        "Unexpected exit from worker",
        "Respawning worker",
    ):
        assert sign not in output, output[-3000:]


@pytest.mark.parametrize("mode", ["sleep", "spin"])
def test_a_transform_past_the_deadline_answers_504_at_the_deadline(risky, mode):
    server, headers = risky
    with httpx.Client(base_url=server.api_url.removesuffix("/api"), timeout=10) as http:
        started = time.monotonic()
        response = http.post(GET, json=realtime(mode), headers=headers)
        elapsed = time.monotonic() - started
        assert response.status_code == 504, response.text
        assert response.json() == {"error": "Timed out", "code": 4, "message": "Timed out"}
        assert 1.9 <= elapsed < 4.5, elapsed  # Tecton's 2 s, not the transform's 6 s (or never)
        assert http.post(GET, json=realtime("fine"), headers=headers).status_code == 200


def test_runaway_transforms_never_block_other_requests_or_probes(risky, tmp_path):
    """As many runaway requests as the server has request threads (2 workers x 4): each frees
    its request thread at the deadline, so views, metadata and probes answer while the
    transforms still run."""
    server, headers = risky
    base = server.api_url.removesuffix("/api")
    answers: list[int] = []
    markers = [tmp_path / f"returned-{i}" for i in range(8)]

    def runaway(marker) -> None:
        with httpx.Client(base_url=base, timeout=20) as http:
            body = realtime(f"sleep:{marker}")
            answers.append(http.post(GET, json=body, headers=headers).status_code)

    threads = [threading.Thread(target=runaway, args=(marker,)) for marker in markers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert answers == [504] * 8
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        plain = http.post(GET, json=PLAIN, headers=headers)
        assert plain.status_code == 200 and plain.json() == {"result": {"features": [None]}}
        metadata = http.post(
            "/api/v1/feature-service/metadata",
            json={"params": {"workspaceName": "rt", "featureServiceName": "risky"}},
            headers=headers,
        )
        assert metadata.status_code == 200
    # Everything above was answered while the transforms still slept.
    assert not any(marker.exists() for marker in markers)
    # They run to their end and free their threads (the session's server serves later tests).
    deadline = time.monotonic() + SLEEP_SECONDS + 15
    while not all(marker.exists() for marker in markers) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling, with a deadline
    assert all(marker.exists() for marker in markers)
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.post(GET, json=realtime("fine"), headers=headers).status_code == 200


# --------------------------------------------------------------------------- the pool itself


def test_an_abandoned_job_is_interrupted_and_its_thread_reused():
    pool = TransformPool(max_threads=1)
    interrupted = threading.Event()

    def spin() -> None:
        try:
            with pool.user_code():
                while True:
                    pass
        except TransformTimedOut:
            interrupted.set()
            raise

    with pytest.raises(DeadlineExceeded):
        pool.run(spin, time.monotonic() + 0.2)
    assert interrupted.wait(5)
    deadline = time.monotonic() + 5
    while pool.stuck and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the pool's own count, with a deadline
    assert pool.stuck == 0
    assert pool.run(lambda: 42, time.monotonic() + 5) == 42
    assert pool.threads == 1  # the same thread served again


def test_jobs_that_ignore_the_interruption_are_replaced_up_to_the_bound():
    pool = TransformPool(max_threads=2)
    release = threading.Event()
    entered = threading.Semaphore(0)

    def stubborn() -> str:
        with pool.user_code():
            entered.release()
            while not release.is_set():
                # Ignores the interruption, as careless user code might.
                with contextlib.suppress(TransformTimedOut):
                    release.wait(10)
        return "late"

    try:
        with pytest.raises(DeadlineExceeded):
            pool.run(stubborn, time.monotonic() + 0.2)
        assert entered.acquire(timeout=5)
        assert pool.stuck == 1
        # A second thread takes the next job: one stuck job costs one thread, not the pool.
        assert pool.run(lambda: "ok", time.monotonic() + 5) == "ok"
        with pytest.raises(DeadlineExceeded):
            pool.run(stubborn, time.monotonic() + 0.2)
        assert entered.acquire(timeout=5)
        assert pool.stuck == 2 == pool.threads
        # Every thread is stuck: refused at once, long before the deadline.
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            pool.run(lambda: "never", time.monotonic() + 5)
        assert time.monotonic() - started < 1
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while pool.stuck and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.stuck == 0
    assert pool.run(lambda: "recovered", time.monotonic() + 5) == "recovered"


def test_an_abandoned_job_stops_at_its_next_call_into_user_code():
    """Tectonite's own code in a job is never interrupted (it may hold locks); the job stops
    before it would run more user code."""
    pool = TransformPool(max_threads=1)
    gate = threading.Event()
    calls: list[str] = []

    def job() -> None:
        gate.wait(5)  # Tectonite's side of the job, past the deadline
        with pool.user_code():
            calls.append("user code ran")

    with pytest.raises(DeadlineExceeded):
        pool.run(job, time.monotonic() + 0.1)
    assert pool.stuck == 1
    gate.set()
    deadline = time.monotonic() + 5
    while pool.stuck and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.stuck == 0
    assert calls == []


def test_what_a_job_raises_reaches_the_caller():
    pool = TransformPool(max_threads=1)

    def fail() -> None:
        raise ValueError("from the job")

    with pytest.raises(ValueError, match="from the job"):
        pool.run(fail, None)

"""The HTTP layer under hostile clients, on every server `tectonite serve` runs (issue 11):
chunked bodies, OPTIONS, `%2F` in paths, 100-continue, and slow clients (slowloris)."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import start_server
from tests.hardening.rawhttp import (
    connect,
    exchange,
    is_envelope,
    read_answer,
    read_until_closed,
)

GET_FEATURES = b"/api/v1/feature-service/get-features"


@pytest.fixture
def consumer_key(committed_runner) -> str:
    committed_runner.ok("workspace", "create", "prod")
    key = committed_runner.ok("api-key", "create", "--description", "http", "--workspace", "prod")
    return key.stdout.strip()


def post_chunked(path: bytes, key: str, chunks: bytes) -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Tecton-key " + key.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )  # fmt: skip


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


PARAMS = orjson.dumps({"params": {"workspaceName": "prod", "featureServiceName": "nope",
                                  "joinKeyMap": {"user_id": "u1"}}})  # fmt: skip


def test_a_well_formed_chunked_body_is_read(server, consumer_key):
    chunks = chunk(PARAMS[:10]) + chunk(PARAMS[10:]) + b"0\r\n\r\n"
    answer = exchange(server.base_url, post_chunked(GET_FEATURES, consumer_key, chunks), "POST")
    # The body was parsed: the service it names is looked up (and unknown).
    assert answer.status == 404, answer
    assert answer.json()["code"] == 5


@pytest.mark.parametrize("size_line", [b"zz", b"-5", b"0x10", b"1_0", b" "])
def test_a_bad_chunk_size_is_a_json_400_never_a_500(server, consumer_key, size_line):
    body = size_line + b"\r\n" + PARAMS + b"\r\n0\r\n\r\n"
    answer = exchange(server.base_url, post_chunked(GET_FEATURES, consumer_key, body), "POST")
    assert answer.status == 400, answer
    assert answer.headers["content-type"] == "application/json"
    assert is_envelope(answer.json()) and answer.json()["code"] == 3


def test_a_chunked_body_over_the_size_limit_is_413(server, consumer_key):
    megabyte = b"x" * (1024 * 1024)
    # 8 MiB (the limit) and one byte more, in chunks.
    body = chunk(megabyte) * 8 + chunk(b"y") + b"0\r\n\r\n"
    answer = exchange(server.base_url, post_chunked(GET_FEATURES, consumer_key, body), "POST")
    assert answer.status == 413, answer
    assert is_envelope(answer.json()) and answer.json()["code"] == 8


def test_a_chunked_body_of_exactly_the_limit_is_read(server, consumer_key):
    body = b" " * (8 * 1024 * 1024 - len(PARAMS)) + PARAMS
    chunks = chunk(body) + b"0\r\n\r\n"
    answer = exchange(server.base_url, post_chunked(GET_FEATURES, consumer_key, chunks), "POST")
    assert answer.status == 404, answer  # parsed (leading spaces are JSON whitespace)


def test_expect_100_continue_is_answered_before_the_body_is_sent(server, consumer_key):
    with connect(server.base_url) as sock:
        sock.sendall(
            b"POST " + GET_FEATURES + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Tecton-key "
            + consumer_key.encode() + b"\r\nExpect: 100-continue\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(PARAMS)
        )  # fmt: skip
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(1)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(PARAMS)
        answer = read_answer(sock, "POST")
    assert answer.status == 404 and answer.json()["code"] == 5


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/feature-service/get-features", {"POST"}),
        ("/api/v2/workspaces/prod/feature-services/fs/metadata", {"GET", "HEAD"}),
        ("/ingest", {"POST"}),
        ("/healthz", {"GET", "HEAD"}),
        ("/_emulator/faults", {"GET", "HEAD", "POST", "DELETE"}),
    ],
)
def test_options_is_a_json_405_with_allow(server, path, allowed):
    answer = exchange(server.base_url, b"OPTIONS %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    assert answer.status == 405, answer
    assert answer.headers["content-type"] == "application/json"
    assert is_envelope(answer.json()) and answer.json()["code"] == 12
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed


@pytest.mark.parametrize(
    "path",
    [
        b"/api/v2/workspaces/prod/feature-services/a%2Fb/metadata",
        b"/api/v2/workspaces/prod/feature-services/%2Ffs/metadata",
        b"/api/v2/workspaces/prod%2F/feature-services/fs/metadata",
        b"/api/v2//workspaces/prod/feature-services/fs/metadata",
        b"/api/v1/feature-service//get-features",
    ],
)
def test_a_slash_in_a_path_segment_is_a_json_404_not_a_redirect(server, consumer_key, path):
    request = b"GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Tecton-key %s\r\n\r\n"
    answer = exchange(server.base_url, request % (path, consumer_key.encode()))
    assert answer.status == 404, answer
    assert "location" not in answer.headers
    assert is_envelope(answer.json()) and answer.json()["code"] == 5


def test_leading_slashes_are_ignored_not_redirected(server):
    answer = exchange(server.base_url, b"GET //healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (answer.status, answer.json()) == (200, {"status": "ok"})


# --------------------------------------------------------------------------- slow clients

READ_TIMEOUT = 6
SLOW_CLIENTS = 200
SLOW_REQUESTS = {
    "one-byte": b"G",
    "partial-head": b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Le",
    "short-body": b'POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"wor',
    "short-chunked-body": b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'10\r\n{"wor',
    "nothing": b"",
}
# Without a key: the app answers 401 before it reads a body. granian (hyper) does not time out
# a body the app is reading, but it closes the connection of a request answered without its
# body, so these cost it nothing either (README, "Reliability").
BODY_KINDS = {"short-body", "short-chunked-body"}


def test_slow_clients_neither_starve_others_nor_stay_connected(database_url, server_name):
    """200 connections that never finish their request (slowloris) while normal clients are
    served: every normal request is answered well before a slow one could have been dropped
    (a starved server answers only after the slow clients time out), and every slow
    connection is closed after the read timeout (408 in the envelope when it sent bytes;
    granian closes without an answer), or at once when it can be answered without its body."""
    proc = start_server(
        {"DATABASE_URL": database_url, "TECTONITE_SERVER": server_name,
         "TECTONITE_READ_TIMEOUT": str(READ_TIMEOUT), "WEB_CONCURRENCY": "2",
         "TECTONITE_THREADS": "4"}
    )  # fmt: skip
    slow = []
    try:
        kinds = list(SLOW_REQUESTS)
        for index in range(SLOW_CLIENTS):
            kind = kinds[index % len(kinds)]
            sock = connect(proc.base_url)
            sock.sendall(SLOW_REQUESTS[kind])
            slow.append((kind, sock))
        started = time.monotonic()
        latencies = []
        for _ in range(20):
            begin = time.monotonic()
            answer = exchange(proc.base_url, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
            latencies.append(time.monotonic() - begin)
            assert answer.status == 200, answer
        assert time.monotonic() - started < READ_TIMEOUT  # all served while the slow ones wait
        # A starved request would wait for the slow clients to be dropped: seconds, not ms.
        assert max(latencies) < 2.5, sorted(latencies)[-5:]

        for kind, sock in slow:
            left = started + READ_TIMEOUT + 10 - time.monotonic()
            data = read_until_closed(sock, within=max(left, 0.1))
            assert data is not None, f"{kind}: still open long after the read timeout"
            head, _, body = data.partition(b"\r\n\r\n")
            if server_name == "granian" and kind in BODY_KINDS:
                assert head.startswith(b"HTTP/1.1 401"), (kind, data)
                assert orjson.loads(body)["code"] == 16
            elif server_name == "gunicorn" and SLOW_REQUESTS[kind]:
                assert head.startswith(b"HTTP/1.1 408"), (kind, data)
                assert is_envelope(orjson.loads(body)) and orjson.loads(body)["code"] == 4
            else:
                assert data == b"", (kind, data)
    finally:
        for _kind, sock in slow:
            sock.close()
        assert proc.stop() == 0

"""`tectonite serve` as users run it: real HTTP servers (granian and gunicorn), a real database."""

import http.client
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import orjson
import psycopg
import pytest

from app import migrate
from tests.conftest import start_server
from tests.hardening.rawhttp import read_until_closed


def get_json(url, context=None):
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return response.status, orjson.loads(response.read())


def test_server_announces_its_url_and_is_ready(server):
    assert server.base_url.startswith("http://127.0.0.1:")
    assert get_json(f"{server.base_url}/readyz") == (
        200,
        {"status": "ready", "schema_revision": migrate.head_revision()},
    )


def test_keep_alive_serves_many_requests_on_one_connection(server):
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.connect()
    first_socket = conn.sock
    for _ in range(5):
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Connection", "keep-alive").lower() != "close"
        response.read()
        assert conn.sock is first_socket  # the connection was not closed and reopened
    conn.close()


def test_unknown_path_over_http_is_json(server):
    request = urllib.request.Request(f"{server.api_url}/v1/feature-service/nope", method="POST")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=10)
    assert excinfo.value.code == 404
    assert excinfo.value.headers["Content-Type"] == "application/json"
    assert orjson.loads(excinfo.value.read())["code"] == 5


def test_embedded_database_is_durable_across_restarts(tmp_path, server_name):
    env = {
        "TECTONITE_SERVER": server_name,
        "TECTONITE_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": "",
        "TEST_DATABASE_URL": "",
    }
    first = start_server(env)
    try:
        assert get_json(f"{first.base_url}/readyz")[0] == 200
        socket_dir = tmp_path / "data" / "pgdata"
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres") as conn:
            conn.execute("INSERT INTO auth_secrets (name, value) VALUES ('canary', 'kept')")
    finally:
        assert first.stop() == 0
    # The master stopped the embedded server on exit: nothing listens on its socket any more.
    assert not list(socket_dir.glob(".s.PGSQL.*"))

    second = start_server(env)
    try:
        assert get_json(f"{second.base_url}/readyz")[0] == 200
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres") as conn:
            value = conn.execute("SELECT value FROM auth_secrets WHERE name = 'canary'").fetchone()
        assert value == ("kept",)
    finally:
        assert second.stop() == 0


def test_sigterm_stops_the_server_cleanly(database_url, server_name):
    proc = start_server({"DATABASE_URL": database_url, "TECTONITE_SERVER": server_name})
    assert get_json(f"{proc.base_url}/healthz")[0] == 200
    proc.process.send_signal(signal.SIGTERM)
    assert proc.stop() == 0
    assert any("Shutting down" in line for line in proc.output)


def test_tls_with_certfile_and_keyfile(database_url, tmp_path, server_name):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    proc = start_server(
        {"DATABASE_URL": database_url, "TECTONITE_SERVER": server_name},
        "--certfile", str(cert), "--keyfile", str(key),
    )  # fmt: skip
    try:
        assert proc.base_url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        assert get_json(f"{proc.base_url}/readyz", context=context)[0] == 200
    finally:
        proc.stop()


def test_wsgi_module_builds_the_app_from_the_environment(database_url):
    env = {**os.environ, "DATABASE_URL": database_url}
    code = (
        "import wsgi; print(wsgi.app.name, sorted(r.rule for r in wsgi.app.url_map.iter_rules()))"
    )
    out = subprocess.run(
        [os.sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "/readyz" in out and "/healthz" in out


def test_cli_commands_share_the_embedded_database_with_a_running_server(tmp_path, server_name):
    """With DATABASE_URL unset, a CLI command attaches to the server's embedded PostgreSQL and
    leaves it running when it exits."""
    env = {
        "TECTONITE_SERVER": server_name,
        "TECTONITE_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": "",
        "TEST_DATABASE_URL": "",
    }
    server = start_server(env)
    cli_env = {**os.environ, **env}
    cli_env.pop("DATABASE_URL")
    cli_env.pop("TEST_DATABASE_URL")
    try:
        cli = [os.sys.executable, "-m", "app.cli"]
        subprocess.run([*cli, "workspace", "create", "shared"], env=cli_env, check=True)
        listed = subprocess.run(
            [*cli, "workspace", "list", "--json"], env=cli_env, check=True, capture_output=True
        ).stdout
        assert orjson.loads(listed) == [{"name": "shared", "live": True}]
        assert get_json(f"{server.base_url}/readyz")[0] == 200  # still up after the CLI left
    finally:
        assert server.stop() == 0


def test_log_format_json_makes_every_log_line_a_json_object(database_url, server_name):
    proc = start_server(
        {"DATABASE_URL": database_url, "LOG_FORMAT": "json", "TECTONITE_SERVER": server_name}
    )
    try:
        assert get_json(f"{proc.base_url}/healthz")[0] == 200
    finally:
        assert proc.stop() == 0
    banner = ("Tectonite is serving the Tecton API at ", "Health: ")
    logs = [line for line in proc.output if line.strip() and not line.startswith(banner)]
    assert logs, proc.output
    for line in logs:
        entry = orjson.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
    server_logger = {"granian": "_granian", "gunicorn": "gunicorn.error"}[server_name]
    assert any(orjson.loads(line)["logger"] == server_logger for line in logs)


def _connect(base_url: str, timeout: float = 10) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def _read_response(sock: socket.socket) -> bytes:
    """Read one response (head and Content-Length body) or until the server closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` (EOF or reset) before the deadline."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _reuse_after_shutdown(sock: socket.socket, within: float) -> bytes:
    """Send requests on a kept-alive connection of a stopping server until it says it closes
    (`Connection: close`) or closes; what it last answered. Fails if it keeps the client
    waiting instead (the request neither answered nor refused)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = _read_response(sock)
        except (ConnectionResetError, BrokenPipeError):
            return b""
        except TimeoutError:
            break
        if not answer:
            return b""  # closed: the client reconnects elsewhere
        assert answer.startswith(b"HTTP/1.1 200"), answer
        if b"connection: close" in answer.partition(b"\r\n\r\n")[0].lower():
            return answer
    raise AssertionError("a request on a kept-alive connection hung after SIGTERM")


def test_sigterm_drains_in_flight_requests_and_closes_idle_connections(
    database_url, server_name, committed_runner, settings
):
    """A request in flight when SIGTERM arrives still gets its answer; an idle keep-alive
    connection is closed, and a request sent on one meanwhile is answered with
    `Connection: close` or refused by closing (the client reconnects instead of hanging)."""
    committed_runner.ok("workspace", "create", "drain")
    key = committed_runner.ok(
        "api-key", "create", "--description", "drain", "--workspace", "drain"
    ).stdout.strip()
    proc = start_server(
        {"DATABASE_URL": database_url, "TECTONITE_SERVER": server_name,
         "TECTONITE_SECRET": settings.secret, "TECTONITE_READ_TIMEOUT": "30"}
    )  # fmt: skip
    with (
        _connect(proc.base_url) as idle,
        _connect(proc.base_url) as reused,
        _connect(proc.base_url) as in_flight,
    ):
        try:
            for sock in (idle, reused):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                assert _read_response(sock).startswith(b"HTTP/1.1 200")
            body = orjson.dumps({"params": {"workspaceName": "drain", "featureServiceName": "x",
                                            "joinKeyMap": {"k": "1"}}})  # fmt: skip
            in_flight.sendall(
                b"POST /api/v1/feature-service/get-features HTTP/1.1\r\nHost: t\r\n"
                b"Authorization: Tecton-key " + key.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(body)
                + body[:5]
            )
            # A readiness probe on a fourth connection: the server is serving requests.
            assert get_json(f"{proc.base_url}/readyz")[0] == 200
            proc.process.send_signal(signal.SIGTERM)
            in_flight.sendall(body[5:])
            answer = _read_response(in_flight)
            assert answer.startswith(b"HTTP/1.1 404"), answer
            assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["code"] == 5
            _reuse_after_shutdown(reused, within=10)
            # Closed well before the 30 s read timeout would have closed it.
            assert _closed_by_server(idle, within=10)
        finally:
            status = proc.stop()
    assert status == 0


def test_idle_and_incomplete_requests_are_closed_after_the_read_timeout(database_url, server_name):
    """TECTONITE_READ_TIMEOUT bounds idle kept-alive connections and requests that never
    finish: their head (both servers) and, under gunicorn, their body."""
    proc = start_server(
        {"DATABASE_URL": database_url, "TECTONITE_SERVER": server_name,
         "TECTONITE_READ_TIMEOUT": "1"}
    )  # fmt: skip
    incomplete = [
        b"G",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n",  # the head never ends
    ]
    if server_name == "gunicorn":  # granian (hyper) does not time out bodies: README
        incomplete.append(b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{")
    try:
        with _connect(proc.base_url) as idle:
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert _read_response(idle).startswith(b"HTTP/1.1 200")
            assert _closed_by_server(idle, within=10)
        for request in incomplete:
            with _connect(proc.base_url) as slow:
                slow.sendall(request)
                answer = read_until_closed(slow, within=10)
            assert answer is not None, request  # closed, not left hanging
            if server_name == "gunicorn":
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408"), answer
                assert orjson.loads(body)["code"] == 4
            else:
                assert answer == b""
    finally:
        assert proc.stop() == 0


MALFORMED = [
    pytest.param(b"HELLO\r\n\r\n", 400, id="garbage"),
    pytest.param(b"GET /healthz HTTP/3.0\r\nHost: t\r\n\r\n", 400, id="unknown-version"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n", 400, id="bad-header-line"),
    pytest.param(
        b"POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400,
        id="bad-content-length",
    ),
    pytest.param(b"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n", 400, id="nul-in-target"),
    pytest.param(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, id="long-url"),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", 431,
        id="huge-header",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n", 431,
        id="too-many-headers",
    ),
]  # fmt: skip
# Refused by gunicorn's parser; granian's may hand them to the app instead.
GUNICORN_REFUSES = [
    pytest.param(
        b"POST /ingest HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}",
        417, id="unknown-expectation",
    ),
    pytest.param(
        b"POST /ingest HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: foo\r\n\r\n", 501,
        id="unsupported-transfer-coding",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_bytes", "status"), MALFORMED)
def test_requests_the_http_layer_refuses_are_never_an_html_page(
    server, server_name, request_bytes, status
):
    """gunicorn answers in Tecton's JSON envelope; granian's Rust parser answers itself, with
    the bare status and an empty body (README, "Differences from Tecton"). Both close."""
    sock = _connect(server.base_url)
    try:
        sock.sendall(request_bytes)
        answer = _read_response(sock)
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"text/html" not in head.lower()
    if server_name == "granian":
        assert body == b"" or orjson.loads(body)["code"], answer
        if body == b"":
            assert head.startswith(b"HTTP/1.1 %d" % status), head
        return
    assert head.startswith(b"HTTP/1.1 %d" % status), head
    assert b"content-type: application/json" in head.lower()
    envelope = orjson.loads(body)
    assert set(envelope) == {"error", "code", "message"}
    assert envelope["error"] == envelope["message"]


@pytest.mark.parametrize(("request_bytes", "status"), GUNICORN_REFUSES)
def test_expectations_and_codings_nobody_supports_are_answered_in_json(
    server, server_name, request_bytes, status
):
    """gunicorn refuses these (417, 501) in the envelope and closes; granian either does the
    same with a bare status or lets the app answer (in the envelope: here, 401)."""
    sock = _connect(server.base_url)
    try:
        sock.sendall(request_bytes)
        answer = _read_response(sock)
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"text/html" not in head.lower()
    if server_name == "granian" and body == b"":
        assert b"connection: close" in head.lower(), head
        return
    assert b"content-type: application/json" in head.lower(), head
    envelope = orjson.loads(body)
    assert set(envelope) == {"error", "code", "message"}
    if server_name == "gunicorn":
        assert head.startswith(b"HTTP/1.1 %d" % status), head
        assert b"connection: close" in head.lower()


def test_unknown_methods_and_http_1_0_reach_the_app_and_get_json(server):
    sock = _connect(server.base_url)
    try:
        sock.sendall(b"FOO /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _, body = _read_response(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405")
        assert orjson.loads(body)["code"] == 12
    finally:
        sock.close()
    sock = _connect(server.base_url)
    try:
        sock.sendall(b"GET /nope HTTP/1.0\r\n\r\n")
        head, _, body = _read_response(sock).partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.0 404", b"HTTP/1.1 404")), head
        assert orjson.loads(body)["code"] == 5
    finally:
        sock.close()


def test_a_port_in_use_is_refused(database_url, server_name):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": database_url, "TECTONITE_SERVER": server_name}
        result = subprocess.run(
            [os.sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert "in use" in (result.stdout + result.stderr).lower()


def test_each_forked_worker_numbers_requests_with_its_own_prefix():
    from app.observability import request_ids

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write_end, request_ids._PREFIX.encode())
        os._exit(0)
    os.close(write_end)
    child_prefix = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(child, 0)
    assert child_prefix and child_prefix != request_ids._PREFIX

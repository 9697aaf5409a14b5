"""`tectonite serve` as users run it: a real gunicorn, real HTTP, a real database."""

import http.client
import os
import signal
import ssl
import subprocess
import urllib.request

import orjson
import psycopg
import pytest

from app import migrate
from tests.conftest import start_server


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


def test_embedded_database_is_durable_across_restarts(tmp_path):
    env = {
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


def test_sigterm_stops_the_server_cleanly(database_url):
    proc = start_server({"DATABASE_URL": database_url})
    assert get_json(f"{proc.base_url}/healthz")[0] == 200
    proc.process.send_signal(signal.SIGTERM)
    assert proc.stop() == 0
    assert any("Shutting down" in line for line in proc.output)


def test_tls_with_certfile_and_keyfile(database_url, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    proc = start_server(
        {"DATABASE_URL": database_url}, "--certfile", str(cert), "--keyfile", str(key)
    )
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


def test_cli_commands_share_the_embedded_database_with_a_running_server(tmp_path):
    """With DATABASE_URL unset, a CLI command attaches to the server's embedded PostgreSQL and
    leaves it running when it exits."""
    env = {
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


def test_log_format_json_makes_every_log_line_a_json_object(database_url):
    proc = start_server({"DATABASE_URL": database_url, "LOG_FORMAT": "json"})
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
    assert any(orjson.loads(line)["logger"] == "gunicorn.error" for line in logs)

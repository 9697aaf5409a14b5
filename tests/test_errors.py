"""Every failure is Tecton's JSON envelope with the right status; never HTML, never a trace."""

import logging

import orjson
import pytest
from sqlalchemy import create_engine

from app import create_app
from app.db import Database
from app.jsonio import json_response, read_json_body


def assert_envelope(response, status, code, message=None):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = orjson.loads(response.data)
    assert set(body) == {"error", "code", "message"}
    assert body["code"] == code
    assert body["error"] == body["message"]
    if message is not None:
        assert body["message"] == message
    return body


@pytest.fixture
def echo_app(app):
    """The app plus a route that parses its JSON body, as the API endpoints do."""

    def echo():
        return json_response({"received": read_json_body()})

    app.add_url_rule("/_test/echo", view_func=echo, methods=["POST"])

    def boom():
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/_test/boom", view_func=boom)
    return app


def test_unknown_path_is_a_404_envelope(client):
    assert_envelope(client.get("/api/v1/nothing-here"), 404, 5, "Not Found")


def test_wrong_method_is_a_405_envelope_with_allow_header(client):
    response = client.delete("/healthz")
    assert_envelope(response, 405, 12, "Method Not Allowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    "body",
    [b'{"a":', b"not json", b"\xff\xfe", b'{"x": NaN}', b'["\\ud800"]', b"[" * 2000],
)
def test_malformed_json_is_a_400_envelope(echo_app, body):
    response = echo_app.test_client().post("/_test/echo", data=body)
    assert_envelope(response, 400, 3)
    assert orjson.loads(response.data)["message"].startswith("Unable to parse request body as JSON")


def test_empty_body_is_a_400_envelope(echo_app):
    response = echo_app.test_client().post("/_test/echo", data=b"")
    assert_envelope(response, 400, 3, "Request body is empty; expected a JSON object.")


def test_any_content_type_is_parsed_as_json(echo_app):
    client = echo_app.test_client()
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/_test/echo", data=b'{"a": 1}', content_type=content_type)
        assert response.status_code == 200
        assert response.json == {"received": {"a": 1}}


def test_oversized_body_is_a_413_envelope(settings, database):
    app = create_app(settings.replace(max_body_bytes=1024), database=database)
    app.add_url_rule(
        "/_test/echo", view_func=lambda: json_response(read_json_body()), methods=["POST"]
    )
    response = app.test_client().post("/_test/echo", data=b"[" + b"1," * 2000 + b"1]")
    assert_envelope(response, 413, 8, "Request body is too large.")


def test_unexpected_exception_is_a_logged_500_envelope_without_details(echo_app, caplog):
    with caplog.at_level(logging.ERROR, logger="tectonite"):
        response = echo_app.test_client().get("/_test/boom", headers={"X-Request-Id": "req-42"})
    body = assert_envelope(response, 500, 13, "Internal error (request id req-42)")
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "Traceback" not in body["message"]
    assert response.headers["X-Request-Id"] == "req-42"
    logged = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_unreachable_database_is_a_503_envelope(settings):
    dead = Database(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    app = create_app(settings, database=dead)

    def query():
        with dead.read() as conn:
            conn.exec_driver_sql("SELECT 1")

    app.add_url_rule("/_test/query", view_func=query)
    response = app.test_client().get("/_test/query")
    assert_envelope(response, 503, 14, "503 Service Temporarily Unavailable")
    assert response.headers["Retry-After"] == "1"


def test_statement_timeout_is_a_504_envelope(app, database):
    def slow():
        with database.read() as conn:
            conn.exec_driver_sql("SET LOCAL statement_timeout = 50")
            conn.exec_driver_sql("SELECT pg_sleep(2)")

    app.add_url_rule("/_test/slow", view_func=slow)
    response = app.test_client().get("/_test/slow")
    assert_envelope(response, 504, 4, "Timed out")

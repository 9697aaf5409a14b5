"""The access log: one line per request with its fields, never the key; cheap by default."""

from __future__ import annotations

import io
import logging
import urllib.request
from collections.abc import Iterator

import orjson
import pytest

from app import create_app
from app.logs import LOGGER_NAME, JsonFormatter, LineHandler
from tests.emulator.conftest import wait_for
from tests.observability.test_metrics import BODY, GET
from tests.serving.conftest import SERVICE


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """What Tectonite's own handler writes, for apps built while it is in use."""
    captured = io.StringIO()
    logger = logging.getLogger(LOGGER_NAME)

    def redirect() -> None:
        for handler in logger.handlers:
            if isinstance(handler, LineHandler):
                handler.setStream(captured)

    captured.redirect = redirect  # type: ignore[attr-defined]
    yield captured
    for handler in logger.handlers:
        if isinstance(handler, LineHandler) and handler.stream is captured:
            logger.removeHandler(handler)


def app_with(settings, database, stderr, **changes):
    app = create_app(settings.replace(**changes), database=database)
    stderr.redirect()
    return app.test_client()


def access_lines(stderr) -> list[str]:
    return [line for line in stderr.getvalue().splitlines() if "tectonite.access" in line]


def check_fields(line: dict, consumer_key: str, request_id: str) -> None:
    assert line["request_id"] == request_id
    assert line["endpoint"] == GET and line["method"] == "POST" and line["status"] == 200
    assert line["path"] == GET
    assert line["workspace"] == "prod" and line["service"] == SERVICE
    assert line["key_id"] == consumer_key.split("_")[1]  # the key's public id part
    assert line["duration_ms"] > 0
    secret = consumer_key.rsplit("_", 1)[1]
    assert secret not in str(line) and "user_1" not in str(line)


def test_json_lines_have_the_fields_and_never_the_key(settings, database, auth, consumer_key,
                                                      stderr):  # fmt: skip
    client = app_with(settings, database, stderr, log_format="json")
    response = client.post(GET, json=BODY, headers={**auth, "X-Request-Id": "req-1"})
    assert response.status_code == 200
    (text,) = access_lines(stderr)
    line = orjson.loads(text)
    assert line["logger"] == "tectonite.access" and line["level"] == "info"
    check_fields(line, consumer_key, "req-1")
    assert line["message"].startswith(f"POST {GET} 200 ")


def test_text_lines_have_the_fields_and_never_the_key(settings, database, auth, consumer_key,
                                                      stderr):  # fmt: skip
    client = app_with(settings, database, stderr, log_format="text")
    assert client.post(GET, json=BODY, headers={**auth, "X-Request-Id": "req-2"}).status_code == 200
    assert client.get("/nope").status_code == 404
    served, unmatched = access_lines(stderr)
    assert f" INFO tectonite.access: POST {GET} 200 " in served
    key_id = consumer_key.split("_")[1]
    assert served.endswith(
        f"ms request_id=req-2 endpoint={GET} workspace=prod service={SERVICE} key_id={key_id}"
    )
    assert consumer_key.rsplit("_", 1)[1] not in served
    assert "GET /nope 404 " in unmatched and "endpoint=unmatched workspace=None" in unmatched


def test_another_handler_on_the_way_gets_the_record(client, auth, consumer_key, caplog):
    """With a handler that is not Tectonite's (here pytest's), the line is a normal record."""
    with caplog.at_level(logging.INFO, logger="tectonite.access"):
        response = client.post(GET, json=BODY, headers={**auth, "X-Request-Id": "req-3"})
    assert response.status_code == 200
    (record,) = [r for r in caplog.records if r.name == "tectonite.access"]
    check_fields(orjson.loads(JsonFormatter().format(record)), consumer_key, "req-3")


def test_access_log_off_writes_nothing(settings, database, auth, stderr):
    client = app_with(settings, database, stderr, access_log=False)
    assert client.post(GET, json=BODY, headers=auth).status_code == 200
    assert access_lines(stderr) == []


@pytest.mark.parametrize("json_lines", [False, True])
@pytest.mark.parametrize("created", [1764591375.25, 1764591375.6519999, 1764591375.9999996])
def test_the_direct_line_is_the_line_logging_would_write(json_lines, created):
    handler = LineHandler(io.StringIO(), json_lines=json_lines)
    fields = {"status": 200, "path": "/x", "key_id": None}
    record = logging.LogRecord("tectonite.access", logging.INFO, "", 0, "GET /x 200", None, None)
    record.created, record.msecs = created, int((created - int(created)) * 1000)
    record.fields = fields
    handler.write_line("tectonite.access", logging.INFO, "GET /x 200", fields, created)
    assert handler.stream.getvalue() == handler.format(record) + "\n"


def test_the_line_skips_logging_records_when_only_tectonite_handles_it(
    settings, database, auth, consumer_key, stderr, monkeypatch
):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # pytest's own capture handlers
    access = logging.getLogger("tectonite.access")

    def no_records(record):
        raise AssertionError("the access log built a LogRecord")

    monkeypatch.setattr(access, "handle", no_records)
    client = app_with(settings, database, stderr, log_format="json")
    assert client.post(GET, json=BODY, headers={**auth, "X-Request-Id": "req-4"}).status_code == 200
    (text,) = access_lines(stderr)
    check_fields(orjson.loads(text), consumer_key, "req-4")


# --------------------------------------------------------------------------- real processes


def test_a_real_server_writes_one_line_per_request(live):
    """Every worker of each HTTP server logs through Tectonite's handler (text lines)."""
    server, key = live
    ids = [f"real-{server.process.pid}-{n}" for n in range(4)]
    for request_id in ids:  # a new connection each: the server spreads them over its workers
        request = urllib.request.Request(
            f"{server.api_url}/v1/feature-service/get-features",
            data=orjson.dumps(BODY),
            headers={"Authorization": f"Tecton-key {key}", "X-Request-Id": request_id,
                     "Connection": "close"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["X-Request-Id"] == request_id

    def lines() -> list[str]:
        found = [line for line in list(server.output) if "tectonite.access" in line]
        return [line for line in found if any(f"request_id={i} " in line for i in ids)]

    logged = wait_for(lambda: len(lines()) == len(ids) and lines())
    key_id = key.split("_")[1]
    for line in logged:
        assert f" POST {GET} 200 " in line
        assert line.rstrip().endswith(
            f"endpoint={GET} workspace=prod service={SERVICE} key_id={key_id}"
        )
        assert key.rsplit("_", 1)[1] not in line

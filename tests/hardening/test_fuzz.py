"""A bounded fuzz of every endpoint over raw HTTP against a real server (hypothesis, fixed
seed): whatever the method, path, key, framing and body, the answer is below 500 and JSON.

Unlike the contract fuzz (tests/observability/test_openapi.py), requests here need not follow
the OpenAPI document at all: names with `/`, `%2F`, NUL or non-ASCII in v2 paths, unknown
methods, chunked bodies with bad framing, invalid JSON (NaN, huge numbers), mutated versions
of real requests, and the admin-only `/_emulator` routes.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.hardening.rawhttp import exchange, is_envelope
from tests.serving.conftest import SERVICE, seed_fraud

# Per server; with the fixed seed the same requests run every time (about 10 s per server).
MAX_EXAMPLES = 150

JOIN_KEYS = {"user_id": "user_1", "merchant": "m1"}
PARAMS = {
    "workspaceName": "prod",
    "featureServiceName": SERVICE,
    "joinKeyMap": JOIN_KEYS,
    "requestContextMap": {"amt": 10.0},
    "metadataOptions": {"includeNames": True, "includeDataTypes": True},
}
RECORD = {"user_id": "user_1", "merchant": "m1", "amt": 1.5, "timestamp": "2026-11-30T10:00:00Z"}
RECORDS = {"transactions": [{"record": RECORD}]}
INGEST = {"workspace_name": "prod", "dry_run": True, "records": RECORDS}
V2 = "/api/v2/workspaces/{ws}/feature-services/{fs}"

# (method, path, body template or None, which key the endpoint needs)
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/v1/feature-service/get-features", {"params": PARAMS}, "consumer"),
    ("POST", "/api/v1/feature-service/get-features-batch",
     {"params": {**PARAMS, "requestData": [{"joinKeyMap": JOIN_KEYS}]}}, "consumer"),
    ("POST", "/api/v1/feature-service/metadata",
     {"params": {"workspaceName": "prod", "featureServiceName": SERVICE}}, "admin"),
    ("POST", "/api/v1/feature-service/query-features",
     {"params": {**PARAMS, "joinKeyMap": {"user_id": "user_1"}}}, "consumer"),
    ("POST", "/api/v1/feature-service/get-feature-service-state",
     {"featureServiceLocator": {"featureServiceName": SERVICE, "workspaceName": "prod"}},
     "consumer"),
    ("POST", V2 + "/get-features", {"params": {"joinKeyMap": JOIN_KEYS}}, "consumer"),
    ("POST", V2 + "/get-features-batch",
     {"params": {"requestData": [{"joinKeyMap": JOIN_KEYS}]}}, "consumer"),
    ("GET", V2 + "/metadata", None, "admin"),
    ("POST", "/ingest", INGEST, "editor"),
    ("POST", "/v2/ingest",
     {"workspaceName": "prod", "dryRun": True, "records": RECORDS},
     "editor"),
    ("GET", "/healthz", None, "none"),
    ("GET", "/readyz", None, "none"),
    ("GET", "/metrics", None, "none"),
    ("GET", "/api/openapi.json", None, "none"),
    ("GET", "/_emulator/clock", None, "admin"),
    ("POST", "/_emulator/clock", {"freeze": True, "at": "2026-11-30T10:00:00Z"}, "admin"),
    ("POST", "/_emulator/reset", {"workspace": "prod", "scope": "values"}, "admin"),
    ("GET", "/_emulator/faults", None, "admin"),
    # Fault rules make the server answer 5xx on purpose (their own tests cover them): fuzzed
    # with a key that may not add one.
    ("POST", "/_emulator/faults", {"endpoint": "get-features", "status": 503}, "consumer"),
    ("DELETE", "/_emulator/faults", None, "admin"),
    ("DELETE", "/_emulator/faults/{id}", None, "admin"),
    ("GET", "/_emulator/requests", None, "admin"),
    ("DELETE", "/_emulator/requests", None, "admin"),
    ("POST", "/_emulator/explain", {"params": PARAMS}, "admin"),
]  # fmt: skip

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"]
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", ""]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities are not JSON: the server must refuse them
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def mutated(template: Any) -> st.SearchStrategy[Any]:
    """The template, each part kept or replaced by arbitrary JSON, with keys sometimes added
    or dropped: requests that are nearly right reach deeper than random ones."""
    if isinstance(template, dict):
        parts = {key: mutated(value) for key, value in template.items()}
        kept = st.fixed_dictionaries({}, optional=parts)
        extra = st.dictionaries(st.text(max_size=12), json_values, max_size=2)
        return st.builds(lambda a, b: {**b, **a}, kept, extra) | json_values
    if isinstance(template, list):
        return st.lists(mutated(template[0]), max_size=3) | json_values
    return st.just(template) | json_values


names = st.sampled_from(["prod", SERVICE, "nope", "a/b", "%2F", "x\x00", "é", "", ".."]) | st.text(
    max_size=20
)


@st.composite
def raw_requests(draw: st.DrawFn, keys: dict[str, str]) -> tuple[str, bytes]:
    method, template_path, body_template, role = draw(st.sampled_from(ENDPOINTS))
    method = draw(st.just(method) | st.sampled_from(METHODS))
    safe = draw(st.sampled_from(["", "/", ":@%"]))
    path = template_path.format(
        ws=urllib.parse.quote(draw(names), safe=safe),
        fs=urllib.parse.quote(draw(names), safe=safe),
        id=urllib.parse.quote(str(draw(st.integers(-5, 10**20) | st.text(max_size=5))), safe=""),
    )
    query = draw(st.dictionaries(st.sampled_from(["limit", "endpoint", "status", "x"]),
                                 st.text(max_size=8), max_size=2))  # fmt: skip
    if query:
        path += "?" + urllib.parse.urlencode(query)

    template = st.none() | json_values if body_template is None else mutated(body_template)
    value = draw(template)
    body = b"" if value is None else json.dumps(value).encode()
    body = draw(st.just(body) | st.binary(max_size=64))

    key = draw(st.sampled_from([keys[role]] * 3 + [keys["consumer"], "", "garbage"]))
    headers = [b"Host: fuzz"]
    if key:
        headers.append(b"Authorization: Tecton-key " + key.encode())
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type:
        headers.append(b"Content-Type: " + content_type.encode())

    framing = draw(st.sampled_from(["length", "length", "chunked", "bad-chunk"]))
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
        payload = body
    else:
        headers.append(b"Transfer-Encoding: chunked")
        cut = draw(st.integers(0, len(body)))
        pieces = [piece for piece in (body[:cut], body[cut:]) if piece]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        if framing == "bad-chunk":
            payload = draw(st.sampled_from([b"zz", b"-5", b"1;\x00", b"fffffffffffffffffff"]))
            payload += b"\r\n" + body + b"\r\n0\r\n\r\n"
    head = f"{method} {path} HTTP/1.1\r\n".encode() + b"\r\n".join(headers) + b"\r\n\r\n"
    return method, head + payload


@pytest.fixture
def fuzz_keys(committed_runner, clean_database, tmp_path) -> dict[str, str]:
    seed_fraud(committed_runner, clean_database, tmp_path)

    def key(*role: str) -> str:
        created = committed_runner.ok("api-key", "create", "--description", "fuzz", *role)
        return created.stdout.strip()

    return {
        "consumer": key("--workspace", "prod"),
        "editor": key("--workspace", "prod", "--role", "editor"),
        "admin": key("--admin"),
        "none": "",
    }


def test_no_request_gets_a_5xx_or_a_body_that_is_not_json(server, fuzz_keys):
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @seed(11)
    @given(raw_requests(fuzz_keys))
    def one(request: tuple[str, bytes]) -> None:
        method, raw = request
        answer = exchange(server.base_url, raw, method)
        assert answer.status < 500, (answer.status, answer.body[:300])
        if method == "HEAD":
            return
        content_type = answer.headers.get("content-type", "")
        if answer.status == 200 and content_type.startswith("text/plain"):
            assert raw.split(b" ", 2)[1].startswith(b"/metrics"), answer  # Prometheus only
            return
        assert content_type == "application/json", (answer.status, content_type, answer.body)
        body = answer.json()
        if answer.status >= 400:
            assert (
                is_envelope(body)
                or "requestError" in body  # the Stream Ingest API's own error shapes
                or "recordErrors" in body
            ), body

    one()

"""`GET /api/openapi.json`: a valid OpenAPI 3.1 document that describes every route, and
contract fuzzing of a live server against it (schemathesis)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.strategies import one_of
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from app import create_app
from app.emulator.schemas import (
    ClockChangeSchema,
    FaultRuleSchema,
    JournalQuerySchema,
    ResetSchema,
)
from app.openapi.document import READ_ONLY_EMULATOR, SECURITY_SCHEME, build_document
from tests.conftest import DOMAIN_TABLES_SQL, Cli
from tests.serving.conftest import seed_fraud

MAX_EXAMPLES = 12  # per operation; the whole fuzz run stays well under a minute


def test_the_document_is_valid_openapi_3_1(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.json
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    scheme = document["components"]["securitySchemes"][SECURITY_SCHEME]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}


def test_every_route_is_documented(app, client):
    paths = client.get("/api/openapi.json").json["paths"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue  # the web console is HTML pages for people, not part of the API
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in paths, f"{rule.rule} is not documented"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {rule.rule} is not documented"


@pytest.mark.parametrize("switch", [True, False])
def test_every_documented_path_is_served(settings, database, switch):
    app = create_app(settings.replace(metrics=switch, emulator_api=switch), database=database)
    served = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in app.url_map.iter_rules()}
    paths = set(app.test_client().get("/api/openapi.json").json["paths"])
    assert paths <= served
    assert ("/metrics" in paths) == switch
    assert ("/_emulator/explain" in paths) == switch


def test_requests_accept_both_spellings_and_errors_are_documented(client):
    document = client.get("/api/openapi.json").json
    params = document["components"]["schemas"]["GetFeaturesParams"]["properties"]
    assert {"joinKeyMap", "join_key_map", "metadataOptions", "metadata_options"} <= set(params)
    ingest = document["paths"]["/ingest"]["post"]
    assert {"200", "400", "401", "403", "404", "413", "429", "503", "504"} <= set(
        ingest["responses"]
    )
    bad = ingest["responses"]["400"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/IngestRecordErrors"} in bad
    assert "workspace_name" in document["components"]["schemas"]["IngestRequest"]["properties"]
    probe = document["paths"]["/healthz"]["get"]
    assert probe["security"] == []


@pytest.mark.parametrize(
    ("name", "schema"),
    [("ClockChange", ClockChangeSchema), ("FaultRule", FaultRuleSchema), ("Reset", ResetSchema)],
)
def test_emulator_requests_are_described_by_the_schemas_that_validate_them(client, name, schema):
    document = client.get("/api/openapi.json").json
    component = document["components"]["schemas"][name]
    assert set(component["properties"]) == {f.data_key or n for n, f in schema().fields.items()}
    assert component["additionalProperties"] is False  # unknown fields are refused (400)
    journal = document["paths"]["/_emulator/requests"]["get"]["parameters"]
    names = {f.data_key or n for n, f in JournalQuerySchema().fields.items()}
    assert {(p["name"], p["in"]) for p in journal} == {(n, "query") for n in names}
    for operations in (v for p, v in document["paths"].items() if p.startswith("/_emulator")):
        for operation in operations.values():
            assert operation["security"] == [{SECURITY_SCHEME: []}]
            assert {"200", "401", "403", "429"} <= set(operation["responses"])


# --------------------------------------------------------------------------- contract fuzzing

# What is fuzzed: every public endpoint, and the `/_emulator` operations that change nothing
# (with an admin key). Clock changes, resets and fault rules would wreck the other operations'
# data; their own tests cover them.
FULL_DOCUMENT = build_document("fuzz")
FUZZ_DOCUMENT = {
    **FULL_DOCUMENT,
    "paths": {
        path: fuzzed
        for path, operations in FULL_DOCUMENT["paths"].items()
        if (fuzzed := {m: op for m, op in operations.items()
                       if not path.startswith("/_emulator") or (m, path) in READ_ONLY_EMULATOR})}
}  # fmt: skip
FUZZ_SCHEMA = schemathesis.openapi.from_dict(FUZZ_DOCUMENT)
OPERATIONS = sorted(op.ok().label for op in FUZZ_SCHEMA.get_all_operations())


@pytest.fixture(scope="module")
def fuzz_target(server, settings, engine_database, tmp_path_factory):
    """The session's real server with the fraud workspace committed; a consumer and an admin
    key."""
    runner = Cli(settings, engine_database)
    seed_fraud(runner, engine_database, tmp_path_factory.mktemp("fuzz"))
    key = runner.ok("api-key", "create", "--description", "fuzz", "--workspace", "prod")
    admin = runner.ok("api-key", "create", "--description", "fuzz admin", "--admin")
    yield server.base_url, key.stdout.strip(), admin.stdout.strip()
    with engine_database.engine.begin() as conn:
        tables = conn.execute(text(DOMAIN_TABLES_SQL)).scalar_one()
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def json_body(ctx, response, case):
    """Every response except the Prometheus exposition is JSON, whatever the status."""
    if case.operation.path == "/metrics" and response.status_code == 200:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (response.status_code, content_type)
    orjson.loads(response.content)
    return


def no_server_error(ctx, response, case):
    assert response.status_code < 500, (response.status_code, response.text[:300])
    return


CHECKS = [
    no_server_error,
    json_body,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_fuzzed_document_is_the_served_one(fuzz_target):
    base_url, _key, _admin = fuzz_target
    with urllib.request.urlopen(f"{base_url}/api/openapi.json", timeout=10) as response:
        served = orjson.loads(response.read())
    assert served["paths"] == FULL_DOCUMENT["paths"]
    assert served["components"] == FULL_DOCUMENT["components"]
    fuzzed = {(m, p) for p, operations in FUZZ_DOCUMENT["paths"].items() for m in operations}
    assert {("post", "/api/v1/feature-service/get-features"), ("post", "/v2/ingest"),
            ("get", "/readyz"), *READ_ONLY_EMULATOR} <= fuzzed  # fmt: skip
    assert not {("post", "/_emulator/reset"), ("post", "/_emulator/clock")} & fuzzed


@pytest.mark.parametrize("path", ["get-features", "query-features", "metadata"])
def test_nul_in_names_is_a_bad_request(path, fuzz_target):
    base_url, key, _admin = fuzz_target
    body = orjson.dumps({"params": {"featureServiceName": "a\x00b", "workspaceName": "prod"}})
    request = urllib.request.Request(
        f"{base_url}/api/v1/feature-service/{path}",
        data=body,
        headers={"Authorization": f"Tecton-key {key}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10).close()
    assert refused.value.code == 400
    assert orjson.loads(refused.value.read())["code"] == 3  # Tecton's INVALID_ARGUMENT


@pytest.mark.parametrize("label", OPERATIONS)
def test_the_live_server_keeps_its_contract(label, fuzz_target):
    """Valid and invalid requests (a fixed seed, a bounded number per operation): no 5xx, every
    status, header and body as documented, every body JSON."""
    base_url, key, admin = fuzz_target
    operation = FUZZ_SCHEMA.find_operation_by_label(label)
    assert operation is not None
    cases = one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    admin_only = operation.path.startswith("/_emulator")
    headers = {"Authorization": f"Tecton-key {admin if admin_only else key}"}

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @seed(16)
    @given(cases)
    def exchange(case):
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=10)

    exchange()

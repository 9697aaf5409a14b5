"""The OpenAPI 3.1 document, built with apispec from marshmallow schemas: the request schemas
the endpoints validate with where they use one (Stream Ingest, `/_emulator`), and `schemas` for
the rest (the serving path parses its bodies by hand, for speed) and for the answers.

`OPERATIONS` lists every public endpoint once: its request schema, its success body and the
errors it can answer. A test checks that every route of the app appears here, so a new endpoint
cannot ship undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from app.emulator import schemas as e
from app.openapi import schemas as s

SECURITY_SCHEME = "TectonKey"
V2 = "/api/v2/workspaces/{workspace}/feature-services/{service}"
JSON = "application/json"

_ERROR_MEANINGS = {
    400: "Bad input (Tecton's message; gRPC code 3)",
    401: "Missing or invalid API key (code 16)",
    403: "Valid key without the role for the workspace (code 7)",
    404: "Unknown path, workspace or feature service, or not live (code 5)",
    413: "Request body too large (code 8)",
    429: "Overloaded, or too many failed authentications (code 8)",
    500: "Only when an emulator fault rule asks for it (code 13)",
    503: "Database unavailable (code 14)",
    504: "Over the 2 s deadline (code 4)",
}
SERVING_ERRORS = (400, 401, 403, 404, 413, 429, 500, 503, 504)
# Admin keys are throttled like any other; explain reads the store under the request deadline.
EMULATOR_ERRORS = (400, 401, 403, 404, 413, 429, 503, 504)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    ok: Any  # a Schema class, a JSON schema dict, or "text" (Prometheus exposition)
    request: type[Schema] | None = None
    request_required: bool = True  # False: an empty body is the same as `{}`
    errors: tuple[int, ...] = SERVING_ERRORS
    authenticated: bool = True
    ok_statuses: tuple[int, ...] = (200,)
    bad_request: Any = None  # the 400 body when it is not the error envelope
    parameters: tuple[dict[str, Any], ...] = field(default_factory=tuple)


_PATH_PARAMETERS = tuple(
    {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    for name in ("workspace", "service")
)
_INGEST_400 = {
    "anyOf": [
        {"$ref": "#/components/schemas/IngestRequestError"},
        {"$ref": "#/components/schemas/IngestRecordErrors"},
        {"$ref": "#/components/schemas/ErrorEnvelope"},
    ]
}

SERVING = [
    Operation("post", "/api/v1/feature-service/get-features", "One feature vector", "serving",
              s.GetFeaturesResponse, s.GetFeaturesRequest),
    Operation("post", "/api/v1/feature-service/get-features-batch",
              "Up to ten feature vectors", "serving", s.GetFeaturesBatchResponse,
              s.GetFeaturesBatchRequest),
    Operation("post", "/api/v1/feature-service/metadata", "A feature service's inputs and outputs",
              "serving", s.MetadataResponse, s.MetadataRequest),
    Operation("post", "/api/v1/feature-service/query-features",
              "Feature vectors for partial join keys", "serving", s.QueryFeaturesResponse,
              s.GetFeaturesRequest),
    Operation("post", "/api/v1/feature-service/get-feature-service-state",
              "`{}` when the feature service is servable", "serving", s.EmptyObject,
              s.FeatureServiceStateRequest),
    Operation("post", f"{V2}/get-features", "One feature vector (v2 path)", "serving",
              s.GetFeaturesResponse, s.GetFeaturesRequest, parameters=_PATH_PARAMETERS),
    Operation("post", f"{V2}/get-features-batch", "Up to ten feature vectors (v2 path)",
              "serving", s.GetFeaturesBatchResponse, s.GetFeaturesBatchRequest,
              parameters=_PATH_PARAMETERS),
    Operation("get", f"{V2}/metadata", "A feature service's inputs and outputs (v2 path)",
              "serving", s.MetadataResponse, parameters=_PATH_PARAMETERS,
              errors=tuple(e for e in SERVING_ERRORS if e != 413)),
]  # fmt: skip

INGEST = [
    Operation("post", path, f"Stream Ingest API ({spelling})", "ingest", s.IngestResponse,
              s.IngestRequest, bad_request=_INGEST_400)
    for path, spelling in (("/ingest", "snake_case messages"), ("/v2/ingest", "camelCase"))
]  # fmt: skip

PROBES = [
    Operation("get", "/healthz", "Liveness: the process is up", "probes", s.Health,
              errors=(), authenticated=False),
    Operation("get", "/readyz", "Readiness: the database answers at the expected schema",
              "probes", s.Readiness, errors=(503,), authenticated=False),
    Operation("get", "/metrics", "Prometheus metrics (text exposition format)", "probes",
              "text", errors=(), authenticated=False),
    Operation("get", "/api/openapi.json", "This document", "probes", {"type": "object"},
              errors=(), authenticated=False),
]  # fmt: skip

EMULATOR = [
    Operation("get", "/_emulator/clock", "The emulated clock", "emulator", s.Clock,
              errors=EMULATOR_ERRORS),
    Operation("post", "/_emulator/clock", "Freeze, advance, resume or reset the clock",
              "emulator", s.Clock, e.ClockChangeSchema, errors=EMULATOR_ERRORS),
    Operation("post", "/_emulator/reset", "Delete stored values (or definitions too)",
              "emulator", s.ResetResult, e.ResetSchema, errors=EMULATOR_ERRORS,
              request_required=False),
    Operation("post", "/_emulator/faults", "Add a fault rule", "emulator", s.FaultCreated,
              e.FaultRuleSchema, errors=EMULATOR_ERRORS),
    Operation("get", "/_emulator/faults", "List fault rules", "emulator", s.FaultList,
              errors=EMULATOR_ERRORS),
    Operation("delete", "/_emulator/faults", "Remove every fault rule", "emulator", s.Removed,
              errors=EMULATOR_ERRORS),
    Operation("delete", "/_emulator/faults/{rule_id}", "Remove one fault rule", "emulator",
              s.Removed, errors=EMULATOR_ERRORS,
              parameters=({"name": "rule_id", "in": "path", "required": True,
                           "schema": {"type": "integer", "minimum": 0}},)),
    Operation("get", "/_emulator/requests", "The request journal, newest first", "emulator",
              s.JournalPage, errors=EMULATOR_ERRORS,
              parameters=({"in": "query", "schema": e.JournalQuerySchema},)),
    Operation("delete", "/_emulator/requests", "Empty the request journal", "emulator",
              s.Removed, errors=EMULATOR_ERRORS),
    Operation("post", "/_emulator/explain", "Why each feature has its value and status",
              "emulator", s.Explanation, s.GetFeaturesRequest, errors=EMULATOR_ERRORS),
]  # fmt: skip

# Operations that change nothing: the contract fuzzing runs them too (with an admin key).
READ_ONLY_EMULATOR = frozenset(
    {("get", "/_emulator/clock"), ("get", "/_emulator/faults"), ("get", "/_emulator/requests"),
     ("post", "/_emulator/explain")}
)  # fmt: skip

_REQUEST_ID_HEADER = {
    "description": "The request id: the client's `X-Request-Id` when it is 1-64 characters of "
    "`A-Za-z0-9._-`, otherwise one the server made up",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
}

_COMPONENT_SCHEMAS: tuple[type[Schema], ...] = (
    s.ErrorEnvelope,
    s.IngestRequestError,
    s.IngestRecordErrors,
    s.SloInfo,
)


def operations(*, emulator: bool = True) -> list[Operation]:
    return [*SERVING, *INGEST, *PROBES, *(EMULATOR if emulator else [])]


def build_document(version: str, *, emulator: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document as a JSON-ready dict."""
    spec = APISpec(
        title="Tectonite",
        version=version,
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Tecton's online feature-serving HTTP API, emulated on PostgreSQL. "
            "Request fields are accepted in lowerCamelCase and snake_case, mixed; `null` "
            'counts as absent. Every error is `{"error", "code", "message"}` (the Stream '
            "Ingest API's 400s carry `requestError` or `recordErrors`)."
        },
    )
    spec.components.security_scheme(
        SECURITY_SCHEME,
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Authorization: Tecton-key <API key>`",
        },
    )
    spec.components.header("X-Request-Id", _REQUEST_ID_HEADER)
    for schema in _COMPONENT_SCHEMAS:
        spec.components.schema(schema.__name__, schema=schema)
    if emulator:
        # What the schema's own check says in words (exactly one field), as JSON Schema.
        exactly_one = {"minProperties": 1, "maxProperties": 1}
        spec.components.schema("ClockChange", exactly_one, schema=e.ClockChangeSchema)
    by_path: dict[str, dict[str, Any]] = {}
    for operation in operations(emulator=emulator):
        by_path.setdefault(operation.path, {})[operation.method] = _operation(operation)
    for path, entries in by_path.items():
        spec.path(path=path, operations=entries)
    return spec.to_dict()


def _operation(op: Operation) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": _operation_id(op),
        "responses": {},
    }
    if op.parameters:
        entry["parameters"] = [dict(p) for p in op.parameters]
    entry["security"] = [{SECURITY_SCHEME: []}] if op.authenticated else []
    if op.request is not None:
        entry["requestBody"] = {
            "required": op.request_required,
            "content": {JSON: {"schema": op.request}},
        }
    for status in op.ok_statuses:
        entry["responses"][str(status)] = _ok(op.ok, status)
    for status in op.errors:
        body = op.bad_request if status == 400 and op.bad_request is not None else None
        entry["responses"][str(status)] = _error(status, body)
    return entry


def _operation_id(op: Operation) -> str:
    words = op.path.strip("/").replace("{", "").replace("}", "").replace(".", "-").split("/")
    cleaned = [w for w in words if w not in ("api",)]
    return op.method + "_" + "_".join(w.replace("-", "_") for w in cleaned)


def _headers(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    headers.update(extra or {})
    return headers


def _ok(body: Any, status: int) -> dict[str, Any]:
    if status == 204:
        return {"description": "Done", "headers": _headers()}
    if body == "text":
        content = {"text/plain": {"schema": {"type": "string"}}}
    else:
        content = {JSON: {"schema": body}}
    return {"description": "OK", "headers": _headers(), "content": content}


def _error(status: int, body: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if status == 401:
        extra["WWW-Authenticate"] = {"required": True, "schema": {"const": "Tecton-key"}}
    if status in (429, 503):
        extra["Retry-After"] = {"schema": {"type": "string"}}
    schema = body if body is not None else {"$ref": "#/components/schemas/ErrorEnvelope"}
    return {
        "description": _ERROR_MEANINGS[status],
        "headers": _headers(extra),
        "content": {JSON: {"schema": schema}},
    }

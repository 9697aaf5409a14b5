"""marshmallow schemas that describe the API's bodies for the OpenAPI document.

The serving path parses requests with a hand-written walk (app/serving/params.py, the hot path);
these schemas describe the same wire format. Every request field is accepted in lowerCamelCase
and in snake_case, so each request schema declares both spellings (`spelled`). Stream Ingest
requests reuse `app.ingest.schemas.IngestRequestSchema`, the schema the endpoint validates with.
"""

from __future__ import annotations

import copy
from typing import Any

from marshmallow import INCLUDE, Schema, fields

from app.ingest.schemas import IngestRequestSchema
from app.serving.params import MAX_BATCH_SIZE

ANY = fields.Raw(allow_none=True, metadata={"description": "any JSON value"})


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


def spelled(name: str, camel_fields: dict[str, fields.Field[Any]], doc: str = "") -> type[Schema]:
    """A request schema declaring each field as `camelCase` and as `snake_case` (both accepted,
    mixed; `null` counts as absent)."""
    declared: dict[str, fields.Field[Any]] = {}
    for camel, field in camel_fields.items():
        declared[camel] = field
        snake = _snake(camel)
        if snake != camel:
            declared[snake] = copy.deepcopy(field)
    schema = Schema.from_dict(declared, name=name)
    schema.Meta.unknown = INCLUDE
    schema.__doc__ = doc or None
    return schema


def _flag(description: str) -> fields.Boolean:
    return fields.Boolean(allow_none=True, metadata={"description": description})


def _text(description: str, **kwargs: Any) -> fields.String:
    return fields.String(allow_none=True, metadata={"description": description, **kwargs})


JOIN_KEY_VALUE = fields.Raw(
    allow_none=True,
    metadata={
        "description": "a join-key value: a string; Int64 keys as decimal strings or integers",
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}],
    },
)

MetadataOptions = spelled(
    "MetadataOptions",
    {
        "includeNames": _flag("feature names in `metadata.features`"),
        "includeDataTypes": _flag("data types in `metadata.features`"),
        "includeEffectiveTimes": _flag("effective times in `metadata.features`"),
        "includeServingStatus": _flag("statuses (PRESENT, MISSING_DATA, CACHED_*)"),
        "includeSloInfo": _flag("`metadata.sloInfo`: this request's real timings"),
        "includeFeatureDescriptions": _flag("descriptions in `metadata.features`"),
        "includeFeatureTags": _flag("tags in `metadata.features`"),
        "includeTypes": _flag("older spelling of includeDataTypes"),
    },
    'Which metadata to return; with none set the response is just `{"result": ...}`.',
)

RequestOptions = spelled(
    "RequestOptions",
    {
        "readFromCache": _flag("read the feature-service cache (default true)"),
        "writeToCache": _flag("write the feature-service cache (default true)"),
        "ignoreExtraRequestContextFields": _flag("ignore unknown request-context keys"),
        "coerceNullCountsToZero": _flag("accepted for compatibility"),
        "latencyBudgetMs": fields.Raw(
            allow_none=True,
            metadata={
                "description": "an integer, or a decimal string",
                "anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}],
            },
        ),
    },
)

_LOCATOR = {
    "featureServiceName": _text("the feature service (v1 paths; v2 names it in the path)"),
    "workspaceName": _text("the workspace (default `prod`; v2 names it in the path)"),
}
_ROW = {
    "joinKeyMap": fields.Dict(
        keys=fields.String(), values=JOIN_KEY_VALUE, allow_none=True, metadata={}
    ),
    "requestContextMap": fields.Dict(keys=fields.String(), values=ANY, allow_none=True),
}
_OPTIONS = {
    "metadataOptions": fields.Nested(MetadataOptions, allow_none=True),
    "requestOptions": fields.Nested(RequestOptions, allow_none=True),
}

RequestRow = spelled("RequestRow", dict(_ROW))
GetFeaturesParams = spelled("GetFeaturesParams", {**_LOCATOR, **_ROW, **_OPTIONS})
GetFeaturesBatchParams = spelled(
    "GetFeaturesBatchParams",
    {
        **_LOCATOR,
        "requestData": fields.List(
            fields.Nested(RequestRow),
            allow_none=True,
            metadata={"description": f"1 to {MAX_BATCH_SIZE} rows"},
        ),
        **_OPTIONS,
    },
)
MetadataParams = spelled("MetadataParams", dict(_LOCATOR))

GetFeaturesRequest = Schema.from_dict(
    {"params": fields.Nested(GetFeaturesParams, required=True)}, name="GetFeaturesRequest"
)
GetFeaturesBatchRequest = Schema.from_dict(
    {"params": fields.Nested(GetFeaturesBatchParams, required=True)},
    name="GetFeaturesBatchRequest",
)
MetadataRequest = Schema.from_dict(
    {"params": fields.Nested(MetadataParams, required=True)}, name="MetadataRequest"
)
FeatureServiceLocator = spelled(
    "FeatureServiceLocator",
    {"featureServiceName": _text("the feature service"), "workspaceName": _text("the workspace")},
)
FeatureServiceStateRequest = spelled(
    "FeatureServiceStateRequest",
    {"featureServiceLocator": fields.Nested(FeatureServiceLocator, allow_none=True)},
)


class IngestRequest(IngestRequestSchema):
    """Stream Ingest request: `records` maps a push source to `[{"record": {column: value}}]`;
    `workspaceName`/`dryRun` may be spelled `workspace_name`/`dry_run` on both paths."""

    class Meta:
        unknown = INCLUDE

    workspace_name = fields.String()
    dry_run = fields.Boolean()
    records = fields.Dict(
        keys=fields.String(),
        values=fields.List(
            fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(), values=ANY))
        ),
    )
    workspaceName = fields.String()  # noqa: N815 (the wire spelling)
    dryRun = fields.Boolean()  # noqa: N815


# --------------------------------------------------------------------------- responses


class ErrorEnvelope(Schema):
    """Every error of the serving API (and every unknown path or method)."""

    error = fields.String(required=True)
    code = fields.Integer(required=True, metadata={"description": "the gRPC status code"})
    message = fields.String(required=True)


class IngestRequestErrorDetail(Schema):
    errorMessage = fields.String(required=True)  # noqa: N815
    errorType = fields.String(required=True)  # noqa: N815


class IngestRequestError(Schema):
    """A Stream Ingest body that is not a valid request."""

    requestError = fields.Nested(IngestRequestErrorDetail, required=True)  # noqa: N815


class IngestRecordError(Schema):
    featureViewName = fields.String()  # noqa: N815
    pushSourceName = fields.String()  # noqa: N815
    errorType = fields.String()  # noqa: N815
    errorMessage = fields.String()  # noqa: N815


class IngestRecordErrors(Schema):
    """Records that do not fit their push source or view; nothing was written."""

    workspaceName = fields.String(required=True)  # noqa: N815
    recordErrors = fields.List(fields.Nested(IngestRecordError), required=True)  # noqa: N815


class FeatureViewIngestMetric(Schema):
    featureViewName = fields.String(required=True)  # noqa: N815
    onlineRecordIngestCount = fields.String(required=True)  # noqa: N815
    featureViewId = fields.String(required=True)  # noqa: N815


class IngestMetrics(Schema):
    featureViewIngestMetrics = fields.List(  # noqa: N815
        fields.Nested(FeatureViewIngestMetric), required=True
    )


class IngestResponse(Schema):
    workspaceName = fields.String(required=True)  # noqa: N815
    ingestMetrics = fields.Nested(IngestMetrics, required=True)  # noqa: N815


class DataType(Schema):
    """Tecton's data type object, e.g. `{"type": "int64"}` or an array/struct/map with parts."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)


class FeatureMetadata(Schema):
    name = fields.String()
    dataType = fields.Nested(DataType)  # noqa: N815
    effectiveTime = fields.String(metadata={"format": "date-time"})  # noqa: N815
    status = fields.Raw(
        metadata={
            "description": "a status, or one per row (batch)",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        }
    )
    description = fields.String()
    tags = fields.Dict(keys=fields.String(), values=fields.String())


class SloInfo(Schema):
    sloEligible = fields.Boolean()  # noqa: N815
    sloServerTimeSeconds = fields.Float()  # noqa: N815
    serverTimeSeconds = fields.Float()  # noqa: N815
    storeMaxLatency = fields.Float()  # noqa: N815
    storeResponseSizeBytes = fields.Integer()  # noqa: N815


class FeatureVector(Schema):
    features = fields.List(
        fields.Raw(allow_none=True),
        required=True,
        metadata={"description": "positional values; Int64 as strings, missing as null"},
    )


class ResponseMetadata(Schema):
    features = fields.List(fields.Nested(FeatureMetadata))
    sloInfo = fields.Raw(  # noqa: N815
        metadata={
            "description": "an object (single) or one per row (batch)",
            "anyOf": [
                {"$ref": "#/components/schemas/SloInfo"},
                {"type": "array", "items": {"$ref": "#/components/schemas/SloInfo"}},
            ],
        }
    )
    batchSloInfo = fields.Nested(SloInfo)  # noqa: N815
    joinKeys = fields.List(fields.Dict())  # noqa: N815


class GetFeaturesResponse(Schema):
    result = fields.Nested(FeatureVector, required=True)
    metadata = fields.Nested(ResponseMetadata)


class GetFeaturesBatchResponse(Schema):
    result = fields.List(fields.Nested(FeatureVector), required=True)
    metadata = fields.Nested(ResponseMetadata)


class QueryResult(Schema):
    features = fields.List(fields.Raw(allow_none=True), required=True)
    joinKeys = fields.List(fields.String(allow_none=True), required=True)  # noqa: N815


class QueryFeaturesResponse(Schema):
    results = fields.List(fields.Nested(QueryResult), required=True)
    metadata = fields.Nested(ResponseMetadata)


class NamedType(Schema):
    name = fields.String(required=True)
    dataType = fields.Nested(DataType, required=True)  # noqa: N815


class MetadataResponse(Schema):
    featureServiceType = fields.String(required=True)  # noqa: N815
    inputJoinKeys = fields.List(fields.Nested(NamedType))  # noqa: N815
    inputRequestContextKeys = fields.List(fields.Nested(NamedType))  # noqa: N815
    featureValues = fields.List(fields.Nested(NamedType), required=True)  # noqa: N815


class EmptyObject(Schema):
    """`{}`."""


class Health(Schema):
    status = fields.String(required=True)


class Readiness(Schema):
    status = fields.String(required=True)
    schema_revision = fields.String(required=True)


# --------------------------------------------------------------------------- /_emulator (§10)
# Request bodies and the journal's query are app.emulator.schemas' own; these are the answers.


class Clock(Schema):
    now = fields.String(required=True, metadata={"format": "date-time"})
    frozen = fields.Boolean(required=True)
    offsetSeconds = fields.Float(required=True)  # noqa: N815


class ResetResult(Schema):
    scope = fields.String(required=True, metadata={"enum": ["values", "all"]})
    workspace = fields.String(required=True, allow_none=True)
    valuesDeleted = fields.Integer(required=True)  # noqa: N815
    workspacesDeleted = fields.Integer(required=True)  # noqa: N815


class FaultCreated(Schema):
    id = fields.Integer(required=True)


class StoredFaultRule(Schema):
    """A rule as stored; `remaining` counts down from `times`."""

    id = fields.Integer(required=True)
    endpoint = fields.String(required=True)
    workspace = fields.String()
    featureService = fields.String()  # noqa: N815
    joinKeys = fields.Dict(keys=fields.String(), values=fields.String())  # noqa: N815
    status = fields.Integer()
    delayMs = fields.Integer()  # noqa: N815
    times = fields.Integer()
    remaining = fields.Integer()
    probability = fields.Float()
    seed = fields.Integer()


class FaultList(Schema):
    faults = fields.List(fields.Nested(StoredFaultRule), required=True)


class Removed(Schema):
    removed = fields.Integer(required=True, metadata={"description": "how many were removed"})


class JournalEntry(Schema):
    id = fields.Integer(required=True)
    time = fields.String(required=True, metadata={"format": "date-time"})
    method = fields.String(required=True)
    path = fields.String(required=True)
    endpoint = fields.String(required=True, allow_none=True)
    workspace = fields.String(required=True, allow_none=True)
    featureService = fields.String(required=True, allow_none=True)  # noqa: N815
    apiKeyId = fields.String(required=True, allow_none=True)  # noqa: N815
    body = fields.Raw(required=True, allow_none=True, metadata={"description": "parsed body"})
    status = fields.Integer(required=True)
    error = fields.String(required=True, allow_none=True)
    durationMs = fields.Float(required=True)  # noqa: N815


class JournalPage(Schema):
    requests = fields.List(fields.Nested(JournalEntry), required=True)


class ExplainedFeature(Schema):
    """One feature's value and status, where it comes from and why; the other fields describe
    the stored row (`featureView`, `entityKey`, `rowFound`, `eventTime`, `ttl`, ...), the cache
    or a realtime view's inputs."""

    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True)
    value = fields.Raw(required=True, allow_none=True)
    status = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": ["store", "cache", "realtime"]})
    reason = fields.String(required=True)


class Explanation(Schema):
    workspace = fields.String(required=True)
    featureService = fields.String(required=True)  # noqa: N815
    now = fields.String(required=True, metadata={"format": "date-time"})
    frozen = fields.Boolean(required=True)
    features = fields.List(fields.Nested(ExplainedFeature), required=True)

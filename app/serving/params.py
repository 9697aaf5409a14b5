"""Request parsing for the serving API.

Tecton's gateway parses requests as proto3 JSON: every field may be spelled lowerCamelCase or
snake_case, at every level, mixed, and `null` means absent. This is the hot path, so parsing is a
small dictionary walk rather than a schema library; messages are Tecton's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from app.errors import BadRequest
from app.names import name_problem

DEFAULT_WORKSPACE = "prod"  # Tecton's default workspace; used when a request names none
MAX_BATCH_SIZE = 10


@functools.cache
def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


def get(obj: dict[str, Any], camel: str) -> Any:
    """`obj[camel]`, or its snake_case spelling; None when absent or null."""
    value = obj.get(camel)
    if value is None:
        value = obj.get(_snake(camel))
    return value


def _object(obj: dict[str, Any], camel: str) -> dict[str, Any]:
    value = get(obj, camel)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid value for {camel}: expected a JSON object.")
    return value


def _bool(obj: dict[str, Any], camel: str, default: bool) -> bool:
    value = get(obj, camel)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid value for {camel}: expected true or false.")
    return value


@dataclass(frozen=True, slots=True)
class MetadataOptions:
    names: bool = False
    effective_times: bool = False
    data_types: bool = False
    slo_info: bool = False
    serving_status: bool = False
    descriptions: bool = False
    tags: bool = False

    @property
    def per_feature(self) -> bool:
        return (
            self.names
            or self.effective_times
            or self.data_types
            or self.serving_status
            or self.descriptions
            or self.tags
        )

    @property
    def any(self) -> bool:
        return self.per_feature or self.slo_info


@dataclass(frozen=True, slots=True)
class RequestOptions:
    read_from_cache: bool = True
    write_to_cache: bool = True
    ignore_extra_request_context_fields: bool = False
    latency_budget_ms: int | None = None
    coerce_null_counts_to_zero: bool = False  # empty count windows answer "0" (PRESENT)


@dataclass(frozen=True, slots=True)
class Row:
    join_keys: dict[str, Any]
    request_context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FeaturesRequest:
    workspace: str
    service: str
    rows: tuple[Row, ...]
    metadata: MetadataOptions
    options: RequestOptions
    batch: bool
    # Located by `featureViewName` (`service` then names a view, served as a one-view service).
    by_view: bool = False


def _metadata_options(params: dict[str, Any]) -> MetadataOptions:
    raw = _object(params, "metadataOptions")
    return MetadataOptions(
        names=_bool(raw, "includeNames", False),
        effective_times=_bool(raw, "includeEffectiveTimes", False),
        data_types=_bool(raw, "includeDataTypes", False) or _bool(raw, "includeTypes", False),
        slo_info=_bool(raw, "includeSloInfo", False),
        serving_status=_bool(raw, "includeServingStatus", False),
        descriptions=_bool(raw, "includeFeatureDescriptions", False),
        tags=_bool(raw, "includeFeatureTags", False),
    )


def _request_options(params: dict[str, Any]) -> RequestOptions:
    raw = _object(params, "requestOptions")
    budget = get(raw, "latencyBudgetMs")
    if budget is not None:
        try:
            budget = int(budget)  # proto3 JSON accepts quoted integers ("200")
        except (TypeError, ValueError):
            raise BadRequest("Invalid value for latencyBudgetMs: expected an integer.") from None
    return RequestOptions(
        read_from_cache=_bool(raw, "readFromCache", True),
        write_to_cache=_bool(raw, "writeToCache", True),
        ignore_extra_request_context_fields=_bool(raw, "ignoreExtraRequestContextFields", False),
        latency_budget_ms=budget,
        coerce_null_counts_to_zero=_bool(raw, "coerceNullCountsToZero", False),
    )


def params_of(body: Any) -> dict[str, Any]:
    """The `params` object of a request body."""
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object.")
    params = body.get("params")
    if params is None:
        raise BadRequest("Missing required field: params")
    if not isinstance(params, dict):
        raise BadRequest("Invalid value for params: expected a JSON object.")
    return params


def locator_of(
    params: dict[str, Any], workspace: str | None = None, service: str | None = None
) -> tuple[str, str]:
    """(workspace, service) from the params, unless the path (v2) already names them."""
    if service is None:
        service = get(params, "featureServiceName")
        if service is None and get(params, "featureServiceId") is not None:
            raise BadRequest("featureServiceId is not supported; use featureServiceName.")
        if not isinstance(service, str) or not service:
            raise BadRequest("Exactly one of featureServiceName and featureServiceId must be set.")
    if workspace is None:
        workspace = get(params, "workspaceName") or DEFAULT_WORKSPACE
        if not isinstance(workspace, str):
            raise BadRequest("Invalid value for workspaceName: expected a string.")
    return checked_name(workspace, "workspaceName"), checked_name(service, "featureServiceName")


def features_locator(
    params: dict[str, Any], workspace: str | None = None, service: str | None = None
) -> tuple[str, str, bool]:
    """(workspace, name, by_view): a feature service, or (v1 only) one feature view named by
    `featureViewName`, as the SDK's `FeatureView.get_online_features` asks for it."""
    if service is None:
        view = get(params, "featureViewName")
        if view is not None:
            if get(params, "featureServiceName") is not None:
                raise BadRequest(
                    "Exactly one of featureServiceName and featureViewName must be set."
                )
            if not isinstance(view, str) or not view:
                raise BadRequest("Invalid value for featureViewName: expected a non-empty string.")
            located, _ = locator_of(params, workspace, "-")
            return located, checked_name(view, "featureViewName"), True
        if get(params, "featureViewId") is not None:
            raise BadRequest("featureViewId is not supported; use featureViewName.")
    located, name = locator_of(params, workspace, service)
    return located, name, False


def checked_name(name: str, field: str) -> str:
    """`name`, unless it cannot name anything (400 before any lookup)."""
    problem = name_problem(name)
    if problem is not None:
        raise BadRequest(f"Invalid value for {field}: {problem}.")
    return name


def _row(raw: dict[str, Any]) -> Row:
    return Row(_object(raw, "joinKeyMap"), _object(raw, "requestContextMap"))


def features_request(
    body: Any, *, batch: bool, workspace: str | None = None, service: str | None = None
) -> FeaturesRequest:
    """Parse a get-features (or -batch) body; raise BadRequest with Tecton's message."""
    params = params_of(body)
    workspace, service, by_view = features_locator(params, workspace, service)
    if batch:
        data = get(params, "requestData")
        if data is None:
            data = []
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise BadRequest("Invalid value for requestData: expected a list of objects.")
        if len(data) > MAX_BATCH_SIZE:
            raise BadRequest(f"Batch size {len(data)} exceeds maximum of {MAX_BATCH_SIZE}.")
        if not data:
            raise BadRequest("requestData must contain at least one row.")
        rows = tuple(_row(r) for r in data)
    else:
        rows = (_row(params),)
    return FeaturesRequest(
        workspace=workspace,
        service=service,
        rows=rows,
        metadata=_metadata_options(params),
        options=_request_options(params),
        batch=batch,
        by_view=by_view,
    )

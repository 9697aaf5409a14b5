"""The "try it" form of a feature service: a real get-features request and its answer.

The form's values become the body a client would send; the request runs through the app's own
endpoint in-process (same validation, role check, store read, fault rules and journal as over
HTTP) as the signed-in principal. The page then shows the answer with the equivalent `curl`
command and `tecton_client` code, with the key left as `$TECTON_API_KEY`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

import orjson
from flask import current_app, request
from werkzeug.datastructures import MultiDict

from app.security import PRINCIPAL_ENVIRON_KEY
from app.serving.model import NameAndType, ResolvedService
from auth.permissions import Principal

PATH = "/api/v1/feature-service/get-features"

# (form field, request option, tecton_client keyword)
METADATA_OPTIONS = (
    ("include_names", "includeNames", "include_names"),
    ("include_data_types", "includeDataTypes", "include_data_types"),
    ("include_effective_times", "includeEffectiveTimes", "include_effective_times"),
    ("include_serving_status", "includeServingStatus", "include_serving_status"),
    ("include_slo_info", "includeSloInfo", "include_slo_info"),
    ("include_feature_descriptions", "includeFeatureDescriptions", "include_feature_descriptions"),
    ("include_feature_tags", "includeFeatureTags", "include_feature_tags"),
)


class FormError(ValueError):
    """A form value that cannot become part of the request (e.g. `abc` for a Float64)."""


@dataclass(frozen=True, slots=True)
class TryIt:
    """What the page shows after a run."""

    body: dict[str, Any]
    status: int
    response_text: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # name, value, status
    curl: str = ""
    python: str = ""


def _typed(key: NameAndType, raw: str) -> Any:
    """A request-context value typed as its declared type, from the form's text."""
    kind = key.type.kind
    try:
        if kind in ("Float64", "Float32"):
            return float(raw)
        if kind in ("Int64", "Int32"):
            return str(int(raw))
        if kind == "Bool":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError(raw)
            return lowered == "true"
        if kind in ("String", "Timestamp"):
            return raw
        return orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise FormError(f"{key.name}: {raw!r} is not a {key.type.spelling}") from None


def request_body(resolved: ResolvedService, form: MultiDict[str, str]) -> dict[str, Any]:
    """The get-features body for the submitted form (empty fields are left out)."""
    join_keys = {
        k.name: form.get(f"join_key.{k.name}", "")
        for k in resolved.join_keys
        if form.get(f"join_key.{k.name}", "") != ""
    }
    context = {
        k.name: _typed(k, form.get(f"context.{k.name}", ""))
        for k in resolved.request_context_keys
        if form.get(f"context.{k.name}", "") != ""
    }
    params: dict[str, Any] = {
        "workspaceName": resolved.workspace,
        "featureServiceName": resolved.name,
        "joinKeyMap": join_keys,
    }
    if context:
        params["requestContextMap"] = context
    options = {wire: True for field_name, wire, _ in METADATA_OPTIONS if form.get(field_name)}
    if options:
        params["metadataOptions"] = options
    return {"params": params}


def run(principal: Principal, resolved: ResolvedService, body: dict[str, Any]) -> TryIt:
    """Send `body` to get-features as `principal`; the answer, however it went."""
    response = current_app.test_client().post(
        PATH,
        data=orjson.dumps(body),
        content_type="application/json",
        environ_overrides={
            PRINCIPAL_ENVIRON_KEY: principal,
            "REMOTE_ADDR": request.remote_addr or "127.0.0.1",
        },
    )
    raw = response.get_data()
    try:
        payload = orjson.loads(raw)
        pretty = json.dumps(payload, indent=2, ensure_ascii=False)
    except orjson.JSONDecodeError:
        payload, pretty = None, raw.decode(errors="replace")
    return TryIt(
        body=body,
        status=response.status_code,
        response_text=pretty,
        rows=_rows(resolved, payload),
        curl=curl_snippet(request.host_url.rstrip("/"), body),
        python=python_snippet(request.host_url.rstrip("/"), body),
    )


def _rows(resolved: ResolvedService, payload: Any) -> list[tuple[str, str, str]]:
    """(feature name, value as JSON, status) in response order; empty for an error answer."""
    if not isinstance(payload, dict) or not isinstance(payload.get("result"), dict):
        return []
    values = payload["result"].get("features") or []
    metadata = payload.get("metadata", {}).get("features") or []
    rows = []
    for index, feature in enumerate(resolved.features):
        value = values[index] if index < len(values) else None
        status = ""
        if index < len(metadata) and isinstance(metadata[index], dict):
            status = str(metadata[index].get("status", ""))
        rows.append((feature.name, json.dumps(value, ensure_ascii=False), status))
    return rows


def curl_snippet(base_url: str, body: dict[str, Any]) -> str:
    return (
        f"curl -sS -X POST {shlex.quote(base_url + PATH)} \\\n"
        '  -H "Authorization: Tecton-key $TECTON_API_KEY" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(json.dumps(body, ensure_ascii=False))}"
    )


def python_snippet(base_url: str, body: dict[str, Any]) -> str:
    params = body["params"]
    options = params.get("metadataOptions", {})
    keywords = [keyword for _, wire, keyword in METADATA_OPTIONS if options.get(wire)]
    lines = [
        "import os",
        "",
        "from tecton_client import MetadataOptions, TectonClient",
        "",
        "client = TectonClient(",
        f"    {base_url!r},",
        '    os.environ["TECTON_API_KEY"],',
        f"    default_workspace_name={params['workspaceName']!r},",
        ")",
        "response = client.get_features(",
        f"    feature_service_name={params['featureServiceName']!r},",
        f"    join_key_map={params.get('joinKeyMap', {})!r},",
    ]
    if "requestContextMap" in params:
        lines.append(f"    request_context_map={params['requestContextMap']!r},")
    if keywords:
        arguments = ", ".join(f"{k}=True" for k in keywords)
        lines.append(f"    metadata_options=MetadataOptions({arguments}),")
    lines += [")", "print(response.get_features_dict())"]
    return "\n".join(lines)

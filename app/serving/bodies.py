"""Response bodies of get-features (single and batch): values, and the metadata asked for."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from app.serving.assembly import Served
from app.serving.model import OutputFeature, ResolvedService
from app.serving.params import FeaturesRequest
from app.serving.statuses import ServingStatus
from app.types import format_timestamp


def _item(
    feature: OutputFeature,
    request: FeaturesRequest,
    status: ServingStatus | list[ServingStatus],
    effective: datetime | None,
) -> dict[str, Any]:
    md = request.metadata
    item: dict[str, Any] = {}
    if md.names:
        item["name"] = feature.name
    if md.effective_times and effective is not None:
        item["effectiveTime"] = format_timestamp(effective)
    if md.data_types:
        item["dataType"] = feature.data_type
    if md.serving_status:
        item["status"] = status
    if md.descriptions and feature.description:
        item["description"] = feature.description
    if md.tags and feature.tags:
        item["tags"] = feature.tags
    return item


def _slo(
    server_seconds: float, slo_seconds: float, store_seconds: float, store_bytes: int
) -> dict[str, Any]:
    return {
        "sloEligible": True,
        "sloServerTimeSeconds": round(slo_seconds, 9),
        "serverTimeSeconds": round(server_seconds, 9),
        "storeMaxLatency": round(store_seconds, 9),
        "storeResponseSizeBytes": store_bytes,
    }


def single_body(
    resolved: ResolvedService, request: FeaturesRequest, served: Served, started: float
) -> dict[str, Any]:
    row = served.rows[0]
    body: dict[str, Any] = {"result": {"features": row.values}}
    md = request.metadata
    if not md.any:
        return body
    metadata: dict[str, Any] = {}
    if md.per_feature:
        metadata["features"] = [
            _item(feature, request, row.statuses[i], row.effective_times[i])
            for i, feature in enumerate(resolved.features)
        ]
    if md.slo_info:
        elapsed = time.perf_counter() - started
        metadata["sloInfo"] = _slo(
            elapsed, elapsed - row.transform_seconds, served.store_seconds, served.store_bytes
        )
    body["metadata"] = metadata
    return body


def batch_body(
    resolved: ResolvedService, request: FeaturesRequest, served: Served, started: float
) -> dict[str, Any]:
    rows = served.rows
    body: dict[str, Any] = {"result": [{"features": row.values} for row in rows]}
    md = request.metadata
    if not md.any:
        return body
    metadata: dict[str, Any] = {}
    if md.per_feature:
        items = []
        for i, feature in enumerate(resolved.features):
            times = [t for row in rows if (t := row.effective_times[i]) is not None]
            items.append(
                _item(feature, request, [row.statuses[i] for row in rows], max(times, default=None))
            )
        metadata["features"] = items
    if md.slo_info:
        elapsed = time.perf_counter() - started
        per_row = [
            _slo(
                served.store_seconds + row.seconds,
                served.store_seconds + row.seconds - row.transform_seconds,
                served.store_seconds,
                served.store_bytes,
            )
            for row in rows
        ]
        metadata["sloInfo"] = per_row
        metadata["batchSloInfo"] = {
            "sloEligible": True,
            "sloServerTimeSeconds": max(s["sloServerTimeSeconds"] for s in per_row),
            "serverTimeSeconds": round(elapsed, 9),
            "storeMaxLatency": round(served.store_seconds, 9),
        }
    body["metadata"] = metadata
    return body

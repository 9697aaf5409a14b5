"""`POST /api/v1/feature-service/get-feature-service-state`: `{}` once a service is servable."""

from __future__ import annotations

from typing import Any

from flask import Response
from sqlalchemy import select

from app.db import get_database
from app.errors import BadRequest, NotFound
from app.jsonio import json_response, read_json_body
from app.models import FeatureService, Workspace
from app.observability import note_target
from app.security import authenticate, require_permission
from app.serving import bp
from app.serving.params import checked_name
from auth.permissions import READ_FEATURES


@bp.post("/v1/feature-service/get-feature-service-state")
def get_feature_service_state() -> Response:
    authenticate()
    body = read_json_body()
    locator = _field(body, "featureServiceLocator", "feature_service_locator")
    feature_service = _required_name(locator, "featureServiceName", "feature_service_name")
    workspace = _required_name(locator, "workspaceName", "workspace_name")
    require_permission(workspace, READ_FEATURES)
    if not _is_servable(workspace, feature_service):
        raise NotFound(
            f"Unable to query FeatureService `{feature_service}` for workspace `{workspace}`. "
            "Newly created feature services may take up to 60 seconds to query. "
            "Also, ensure that the workspace is a live workspace."
        )
    note_target(workspace, feature_service, exists=True)
    return json_response({})


def _is_servable(workspace: str, feature_service: str) -> bool:
    statement = (
        select(FeatureService.id)
        .join(Workspace, Workspace.id == FeatureService.workspace_id)
        .where(
            Workspace.name == workspace,
            Workspace.live.is_(True),
            FeatureService.name == feature_service,
            FeatureService.online_serving_enabled.is_(True),
        )
    )
    with get_database().read() as connection:
        return connection.execute(statement).first() is not None


def _field(obj: Any, camel: str, snake: str) -> Any:
    """`obj[camel]` or `obj[snake]` (Tecton accepts both spellings); None when absent."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _required_name(locator: Any, camel: str, snake: str) -> str:
    value = _field(locator, camel, snake)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"featureServiceLocator.{camel} must be a non-empty string.")
    return checked_name(value, f"featureServiceLocator.{camel}")

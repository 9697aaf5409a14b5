"""Liveness and readiness probes; unauthenticated, JSON, and free of anything secret."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_database
from app.errors import Unavailable, envelope
from app.jsonio import json_response
from app.migrate import current_revision

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up; touches nothing else."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """The database answers and its schema is at the revision this code expects."""
    expected = current_app.extensions["tectonite.schema_head"]
    try:
        with get_database().read() as connection:
            current = current_revision(connection)
    except SQLAlchemyError as exc:
        return _not_ready(f"database unreachable ({type(exc).__name__})")
    if current != expected:
        return _not_ready(
            f"schema at revision {current}, expected {expected}; run `tectonite db upgrade`"
        )
    return json_response({"status": "ready", "schema_revision": current})


def _not_ready(reason: str) -> Response:
    response = envelope(Unavailable(f"Not ready: {reason}"))
    response.headers["Retry-After"] = "1"
    return response

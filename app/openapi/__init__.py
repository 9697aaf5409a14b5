"""`GET /api/openapi.json`: the OpenAPI 3.1 description of every public endpoint."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app

from app.jsonio import JSON_MIMETYPE

EXTENSION_KEY = "tectonite.openapi"

bp = Blueprint("openapi", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def get_document(app: Flask | None = None) -> dict[str, Any]:
    """The app's document, built on first use and kept for the app's lifetime."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cached: dict[str, Any] | None = app.extensions.get(EXTENSION_KEY)
    if cached is None:
        from app.openapi.document import build_document

        settings = app.extensions["tectonite.settings"]
        emulator = getattr(settings, "emulator_api", True)  # TECTONITE_EMULATOR_API (issue 13)
        cached = app.extensions[EXTENSION_KEY] = build_document(_version(), emulator=emulator)
    return cached


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    body = orjson.dumps(get_document())
    return Response(body, mimetype=JSON_MIMETYPE)


def _version() -> str:
    try:
        return version("tectonite")
    except PackageNotFoundError:  # pragma: no cover (a source checkout without install)
        return "0"

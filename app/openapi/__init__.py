"""`GET /api/openapi.json`: the OpenAPI 3.1 description of every public endpoint."""

from __future__ import annotations

import re
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app

from app.extensions import Slot
from app.jsonio import JSON_MIMETYPE

bp = Blueprint("openapi", __name__)


class ApiDocument:
    """An app's document, built on first use (a few milliseconds) and kept for its lifetime."""

    def __init__(self) -> None:
        self._body: bytes | None = None
        self._lock = threading.Lock()

    def body(self, app: Flask) -> bytes:
        """The document of `app` as JSON (its routes are all registered by the first request)."""
        if self._body is None:
            with self._lock:
                if self._body is None:
                    self._body = orjson.dumps(document_of(app))
        return self._body


def document_of(app: Flask) -> dict[str, Any]:
    """The document for what `app` serves: without `/metrics` when TECTONITE_METRICS=off, and
    without the `/_emulator` endpoints while the app has none."""
    from app.openapi.document import build_document

    served = {_openapi_path(rule.rule) for rule in app.url_map.iter_rules()}
    document = build_document(_version())
    document["paths"] = {path: ops for path, ops in document["paths"].items() if path in served}
    return document


def _openapi_path(rule: str) -> str:
    """`/a/<name>` or `/a/<int:name>` as OpenAPI spells it: `/a/{name}`."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


DOCUMENT = Slot[ApiDocument]("tectonite.openapi")


def init_app(app: Flask) -> None:
    DOCUMENT.register(app, ApiDocument())
    app.register_blueprint(bp)


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    return Response(DOCUMENT.get().body(current_app), mimetype=JSON_MIMETYPE)


def _version() -> str:
    try:
        return version("tectonite")
    except PackageNotFoundError:  # pragma: no cover (a source checkout without install)
        return "0"

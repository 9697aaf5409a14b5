"""`GET /api/openapi.json`: the OpenAPI 3.1 description of every public endpoint."""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from flask import Blueprint, Flask, Response

from app.config import Settings
from app.extensions import Slot
from app.jsonio import JSON_MIMETYPE

bp = Blueprint("openapi", __name__)


class ApiDocument:
    """The app's document, built on first use (a few milliseconds) and kept for its lifetime."""

    def __init__(self, *, emulator: bool) -> None:
        self.emulator = emulator
        self._body: bytes | None = None
        self._lock = threading.Lock()

    def body(self) -> bytes:
        """The document as JSON."""
        if self._body is None:
            with self._lock:
                if self._body is None:
                    self._body = orjson.dumps(self.document())
        return self._body

    def document(self) -> dict[str, Any]:
        from app.openapi.document import build_document

        return build_document(_version(), emulator=self.emulator)


DOCUMENT = Slot[ApiDocument]("tectonite.openapi")


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["tectonite.settings"]
    emulator = getattr(settings, "emulator_api", True)  # TECTONITE_EMULATOR_API (issue 13)
    DOCUMENT.register(app, ApiDocument(emulator=bool(emulator)))
    app.register_blueprint(bp)


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    return Response(DOCUMENT.get().body(), mimetype=JSON_MIMETYPE)


def _version() -> str:
    try:
        return version("tectonite")
    except PackageNotFoundError:  # pragma: no cover (a source checkout without install)
        return "0"

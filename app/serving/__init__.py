"""The Tecton-compatible serving API under `/api`; each module adds its endpoints to `bp`.

Modules by job: `params` (request parsing), `model` (the resolved service, serving's read
model), `validation` (rows against the service), `assembly` (one store read, feature vectors),
`bodies` (response JSON), `cache` (the app's caches), `routes` and `state` (endpoints).
"""

from __future__ import annotations

from flask import Blueprint, Flask

from app import changes
from app.serving.cache import SERVING, ServingState

bp = Blueprint("serving", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    """The serving endpoints, and the app's caches (dropped on definition changes)."""
    from app.serving import routes, state  # noqa: F401  (importing them registers their routes)

    settings = app.extensions["tectonite.settings"]
    SERVING.register(
        app, ServingState.create(changes.get_feed(app), request_threads=settings.threads)
    )
    app.register_blueprint(bp)


__all__ = ["SERVING", "ServingState", "bp", "init_app"]

"""Tectonite: Tecton's online feature-serving HTTP API, emulated on PostgreSQL."""

from __future__ import annotations

from flask import Flask

from app import changes, db, jsonio, observability, openapi, security
from app.config import Settings
from app.db import Database
from app.errors import register_error_handlers
from app.logs import configure_logging
from app.migrate import head_revision


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """The composition root: settings → logging → JSON → database → blueprints → errors."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["tectonite.settings"] = settings
    app.extensions["tectonite.schema_head"] = head_revision()

    configure_logging(settings)
    jsonio.init_app(app)
    db.init_app(app, database or Database.from_settings(settings))
    observability.init_app(app)
    openapi.init_app(app)
    _register_blueprints(app)
    register_error_handlers(app)
    security.init_app(app)
    if settings.listen_for_changes:
        changes.start_listener(settings.libpq_url)
    return app


def _register_blueprints(app: Flask) -> None:
    from app.health import bp as health_bp
    from app.ingest import bp as ingest_bp
    from app.serving import bp as serving_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(ingest_bp)
    app.register_blueprint(serving_bp)

"""Tectonite: Tecton's online feature-serving HTTP API, emulated on PostgreSQL."""

from __future__ import annotations

from flask import Flask

from app import changes, db, deadline, emulator, jsonio, observability, openapi, security, store
from app.config import Settings
from app.db import Database
from app.errors import register_error_handlers
from app.flask_app import TectoniteFlask
from app.logs import configure_logging
from app.migrate import head_revision


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """The composition root: settings → logging → JSON and the request deadline → database,
    change feed and store → features (each registers its blueprint and its own state) → errors.

    Everything the app keeps between requests is created here, in `init_app`s, and stored in
    `app.extensions` (see `app.extensions.Slot`): two apps share nothing but a `database` handed
    to both, and the change feed of an app hears the commits made through its `database`.
    """
    settings = settings or Settings.from_env()
    app = TectoniteFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # OPTIONS is not part of Tecton's API: 405 in the JSON envelope (with `Allow`), not Flask's
    # automatic empty text/html answer. Must be set before any route is registered.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions["tectonite.settings"] = settings
    app.extensions["tectonite.schema_head"] = head_revision()

    configure_logging(settings)
    jsonio.init_app(app)
    deadline.init_app(app, settings.request_timeout_ms / 1000)
    database = database or Database.from_settings(settings)
    db.init_app(app, database)
    feed = changes.ChangeFeed()
    database.change_feeds.add(feed)
    changes.init_app(
        app, feed, listen_on=settings.listen_libpq_url if settings.listen_for_changes else None
    )
    store.init_app(app, store.open_store(database, settings))
    observability.init_app(app)
    openapi.init_app(app)
    _init_features(app)
    register_error_handlers(app)
    security.init_app(app)
    emulator.init_app(app)
    return app


def _init_features(app: Flask) -> None:
    from app import health, ingest, serving

    app.register_blueprint(health.bp)
    ingest.init_app(app)
    serving.init_app(app)
    if app.extensions["tectonite.settings"].console:
        from app import console

        console.init_app(app)

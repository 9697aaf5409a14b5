"""Emulator controls: the clock, reset, fault rules, the request journal and explain.

`init_app` creates this process's emulator state (the clock and fault-rule copies, the journal
writer) in `app.extensions`, installs the request hooks (fault injection before, journaling
after every API request) and, unless `TECTONITE_EMULATOR_API=off`, the `/_emulator` routes.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("emulator", __name__, url_prefix="/_emulator")


def init_app(app: Flask) -> None:
    from app import db
    from app.config import Settings
    from app.emulator import clock, faults, journal, models  # noqa: F401  (models: the tables)

    settings: Settings = app.extensions["tectonite.settings"]
    database: db.Database = app.extensions[db.EXTENSION_KEY]
    app.extensions[clock.EXTENSION_KEY] = clock.EmulatedClock(database)
    injector = faults.FaultInjector(database)
    app.extensions[faults.EXTENSION_KEY] = injector
    app.before_request(journal.mark_start)
    app.before_request(injector.before_request)
    if settings.journal:
        writer = journal.JournalWriter(
            database,
            settings.journal_size,
            background=not database.is_bound,
            conninfo=settings.libpq_url if settings.database_url else None,
        )
        app.extensions[journal.EXTENSION_KEY] = writer
        app.after_request(writer.after_request)
    if settings.emulator_api:
        from app.emulator import routes  # noqa: F401  (registers the routes on bp)

        app.register_blueprint(bp)

"""Emulator controls: the clock, reset, fault rules, the request journal and explain.

`init_app` creates this process's emulator state (the clock and fault-rule copies, the journal
writer) in `app.extensions`, installs the request hooks (fault injection before, journaling
after every API request) and, unless `TECTONITE_EMULATOR_API=off`, the `/_emulator` routes.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("emulator", __name__, url_prefix="/_emulator")


def init_app(app: Flask) -> None:
    from app import changes, db
    from app.config import Settings
    from app.emulator import clock, faults, journal, models  # noqa: F401  (models: the tables)

    settings: Settings = app.extensions["tectonite.settings"]
    database = db.get_database(app)
    feed = changes.get_feed(app)
    clock.CLOCK.register(app, clock.EmulatedClock(database, feed))
    injector = faults.FAULTS.register(app, faults.FaultInjector(database, feed))
    app.before_request(journal.mark_start)
    app.before_request(injector.before_request)
    writer: journal.JournalWriter | None = None
    if settings.journal:
        writer = journal.JournalWriter(
            database,
            settings.journal_size,
            background=database.bound_connection is None,
            conninfo=settings.libpq_url if settings.database_url else None,
            pooled=settings.behind_pgbouncer,
        )
        app.after_request(writer.after_request)
    journal.JOURNAL.register(app, writer)
    if settings.emulator_api:
        from app.emulator import routes  # noqa: F401  (registers the routes on bp)

        app.register_blueprint(bp)

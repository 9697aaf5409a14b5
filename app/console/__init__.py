"""The web console at `/console`: server-rendered pages over what the emulator holds.

`init_app` is called by `create_app()` unless `TECTONITE_CONSOLE=off`. The console has its own
session cookie (`app.console.session`), its own HTML error pages, and reads through the same
read model the API serves from; whatever a key's roles cannot read is neither shown nor linked.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def init_app(app: Flask) -> None:
    from app.console import routes  # noqa: F401  (registers the views on bp)
    from app.console.access import CONSOLE_SECRET
    from app.console.session import ConsoleSecret, ConsoleSessionInterface

    secret = ConsoleSecret(app.extensions["tectonite.settings"])
    CONSOLE_SECRET.register(app, secret)
    app.session_interface = ConsoleSessionInterface(secret)
    app.register_blueprint(bp)

"""The benchmark's baseline: a trivial Flask endpoint under Tectonite's own gunicorn settings.

It parses a small JSON body and answers a small JSON body with orjson: the cost of the stack
itself, against which every Tectonite figure is reported as a ratio.
"""

from __future__ import annotations

import sys

import orjson
from flask import Flask, Response, request

from app.cli.serve import announce_ready
from app.config import Settings
from app.server import TectoniteServer


def create_baseline_app(_settings: Settings | None = None) -> Flask:
    app = Flask("baseline")

    @app.post("/api/v1/feature-service/get-features")
    def echo() -> Response:
        body = orjson.loads(request.get_data())
        keys = body["params"]["joinKeyMap"]
        return Response(orjson.dumps({"result": {"features": [keys]}}), mimetype="application/json")

    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    settings = Settings.from_env().replace(port=port)
    TectoniteServer(settings, app_factory=create_baseline_app, on_ready=announce_ready).run()

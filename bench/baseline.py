"""The benchmark's baselines: a trivial Flask endpoint, `python bench/baseline.py PORT [SERVER]`.

It parses a small JSON body and answers a small JSON body with orjson: the cost of the stack
itself, against which every Tectonite figure is reported as a ratio. SERVER is `gunicorn` (the
fixed baseline: gthread, 2 workers x 8 threads) or `granian` (the same endpoint on Tectonite's
default server, with Tectonite's settings).
"""

from __future__ import annotations

import sys

import orjson
from flask import Flask, Response, request

from app.cli.serve import announce_ready
from app.config import Settings
from app.server import make_server


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
    server = sys.argv[2] if len(sys.argv) > 2 else "gunicorn"
    settings = Settings.from_env().replace(port=port, server=server)
    if server == "gunicorn":  # the fixed baseline does not follow WEB_CONCURRENCY & co.
        settings = settings.replace(workers=2, threads=8)
    make_server(settings, app_factory=create_baseline_app, on_ready=announce_ready).run()

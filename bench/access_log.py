"""What one access-log line costs, in-process, next to a get-features request's server time:

    python bench/access_log.py               # 1,000 entities; a few seconds of timing

Creates a fresh database (DATABASE_URL's server, or an embedded one), applies bench/features.yaml
with 1,000 entities, builds the app in this process twice (TECTONITE_ACCESS_LOG on and off, the
log going to /dev/null through the usual handler) and times, interleaved:

- `wsgi`: one get-features request through the WSGI app (no HTTP, no client): the server time;
- `hook`: the access-log writer alone, as the after-request hook calls it, for the same request:
  written by Tectonite's handler (text and JSON), and through logging's usual record path (what
  any other handler on the way, e.g. an embedding app's, costs).

Prints medians of 5 rounds (microseconds) and the hook's share of the request (the median of
its per-round shares: each round times everything once, so they share the machine's load).
"""

from __future__ import annotations

import io
import logging
import os
import random
import statistics
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from run import BENCH, SERVICE, WORKSPACE, fresh_database, tectonite, write_csvs
from werkzeug.test import EnvironBuilder

from app import create_app
from app.config import Settings
from app.logs import LOGGER_NAME, TEXT_FORMAT, LineHandler
from app.observability import access_log

PATH = "/api/v1/feature-service/get-features"


def request_caller(app: Any, key: str, entities: int) -> Callable[[], None]:
    """One get-features request through `app.wsgi_app`, a different entity each time."""
    rng = random.Random(3)
    bodies = [
        orjson.dumps({"params": {"workspaceName": WORKSPACE, "featureServiceName": SERVICE,
                                 "joinKeyMap": {"customer_id": f"c{rng.randrange(entities)}"}}})
        for _ in range(256)
    ]  # fmt: skip
    template = EnvironBuilder(
        path=PATH, method="POST", headers={"Authorization": f"Tecton-key {key}"},
        content_type="application/json", data=bodies[0],
    ).get_environ()  # fmt: skip
    index = 0

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"get-features answered {status}")

    def call() -> None:
        nonlocal index
        body = bodies[index % len(bodies)]
        index += 1
        environ = dict(template, CONTENT_LENGTH=str(len(body)))
        environ["wsgi.input"] = io.BytesIO(body)
        for _chunk in app.wsgi_app(environ, start_response):
            pass

    return call


def hook_caller(app: Any, key: str) -> Callable[[], None]:
    """The access-log writer for a served request's environ (what `finished` calls)."""
    write = access_log.writer()
    captured: dict[str, Any] = {}

    @app.after_request
    def keep(response: Any) -> Any:
        from flask import request

        captured.update(request.environ)
        return response

    request_caller(app, key, 1)()
    environ = dict(captured)

    def call() -> None:
        write(environ, PATH, 200, 0.00123)

    return call


def main() -> None:
    rounds, calls = 5, 2000
    with fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
        tectonite(env, "workspace", "create", WORKSPACE)
        tectonite(env, "apply", "-f", str(BENCH / "features.yaml"), "--workspace", WORKSPACE,
                  "--yes")  # fmt: skip
        key = tectonite(env, "api-key", "create", "--description", "bench",
                        "--workspace", WORKSPACE).strip()  # fmt: skip
        entities = 1000
        for view, path in write_csvs(Path(scratch), entities, random.Random(7)).items():
            tectonite(env, "ingest", "--workspace", WORKSPACE, "--feature-view", view, str(path))
        base = Settings.from_env(env).replace(listen_for_changes=False)
        devnull = open(os.devnull, "w")  # noqa: SIM115 (kept open for the whole run)
        tectonite_logger = logging.getLogger(LOGGER_NAME)
        handlers = {
            "text": LineHandler(devnull, json_lines=False),
            "json": LineHandler(devnull, json_lines=True),
            "plain": logging.StreamHandler(devnull),  # not Tectonite's: the usual logging path
        }
        handlers["plain"].setFormatter(logging.Formatter(TEXT_FORMAT))
        on = create_app(base.replace(access_log=True))
        off = create_app(base.replace(access_log=False))
        hook = hook_caller(create_app(base), key)
        # (name, handler on the `tectonite` logger while timing, what is timed)
        cases: list[tuple[str, logging.Handler, Callable[[], None]]] = [
            ("request, access log off", handlers["text"], request_caller(off, key, entities)),
            ("request, access log on", handlers["text"], request_caller(on, key, entities)),
            ("access-log hook alone (text)", handlers["text"], hook),
            ("access-log hook alone (LOG_FORMAT=json)", handlers["json"], hook),
            ("access-log hook through logging's record path", handlers["plain"], hook),
        ]

        def use(handler: logging.Handler) -> None:
            for old in list(tectonite_logger.handlers):
                tectonite_logger.removeHandler(old)
            tectonite_logger.addHandler(handler)

        for _name, handler, call in cases:
            use(handler)
            for _ in range(200):
                call()  # warm caches, connections and compiled transforms
        timings: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(rounds):
            for name, handler, call in cases:
                use(handler)
                seconds = timeit.timeit(call, number=calls)
                timings[name].append(seconds / calls * 1e6)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"load average: {os.getloadavg()[0]:.2f} (2 shared cores: figures are noisy)")
    print("| What | µs (median of 5) | rounds |")
    print("|---|---|---|")
    for name, values in timings.items():
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {medians[name]:.1f} | {each} |")
    requests = timings["request, access log off"]
    for name, values in timings.items():
        if name.startswith("access-log hook"):
            shares = [100 * hook / request for hook, request in zip(values, requests, strict=True)]
            each = ", ".join(f"{share:.1f}" for share in shares)
            print(f"{name}: {statistics.median(shares):.1f} % of a request (rounds: {each})")


if __name__ == "__main__":
    main()

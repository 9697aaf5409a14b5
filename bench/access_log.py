"""What one access-log line and one request's metrics cost, in-process, next to a get-features
request's server time:

    python bench/access_log.py               # 1,000 entities; a few seconds of timing

Creates a fresh database (DATABASE_URL's server, or an embedded one), applies bench/features.yaml
with 1,000 entities, builds the app in this process (metrics in prometheus-client's
multiprocess mode, on memory-mapped files, as `tectonite serve` runs them; the log going to
/dev/null through the usual handler) and times, interleaved:

- `request`: one get-features request through the WSGI app (no HTTP, no client): the server
  time, with metrics and the access log off, metrics only, and both (the default);
- `hook`: the access-log writer alone, as the after-request hook calls it, for the same request:
  written by Tectonite's handler (text and JSON), and through logging's usual record path (what
  any other handler on the way, e.g. an embedding app's, costs);
- `metrics`: a served request's recording alone (its request counter and latency, the store
  read, feature statuses and cache lookups).

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
from app.observability.metrics import prepare_multiprocess_dir

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


def metrics_caller(app: Any, key: str) -> Callable[[], None]:
    """A get-features request's metric recording, as `finished` and the view make it."""
    from app.observability.metrics import find_metrics

    recorder = find_metrics(app)
    if recorder is None:
        raise RuntimeError("metrics are off")
    seen: list[Any] = []
    observe_served = recorder.observe_served
    recorder.observe_served = lambda resolved, served: seen.append((resolved, served))  # type: ignore[method-assign]
    request_caller(app, key, 1)()
    recorder.observe_served = observe_served  # type: ignore[method-assign]
    resolved, served = seen[0]

    def call() -> None:
        recorder.observe_request(PATH, WORKSPACE, 200, 0.00123)
        recorder.observe_served(resolved, served)

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
        base = Settings.from_env(env).replace(
            listen_for_changes=False, metrics_dir=prepare_multiprocess_dir(Path(scratch) / "prom")
        )
        devnull = open(os.devnull, "w")  # noqa: SIM115 (kept open for the whole run)
        tectonite_logger = logging.getLogger(LOGGER_NAME)
        handlers = {
            "text": LineHandler(devnull, json_lines=False),
            "json": LineHandler(devnull, json_lines=True),
            "plain": logging.StreamHandler(devnull),  # not Tectonite's: the usual logging path
        }
        handlers["plain"].setFormatter(logging.Formatter(TEXT_FORMAT))
        on = create_app(base)
        metrics_only = create_app(base.replace(access_log=False))
        off = create_app(base.replace(access_log=False, metrics=False))
        hook = hook_caller(create_app(base), key)
        recording = metrics_caller(create_app(base.replace(access_log=False)), key)
        # (name, handler on the `tectonite` logger while timing, what is timed)
        cases: list[tuple[str, logging.Handler, Callable[[], None]]] = [
            (
                "request, metrics and access log off",
                handlers["text"],
                request_caller(off, key, entities),
            ),
            ("request, metrics on", handlers["text"], request_caller(metrics_only, key, entities)),
            (
                "request, metrics and access log on",
                handlers["text"],
                request_caller(on, key, entities),
            ),
            ("access-log hook alone (text)", handlers["text"], hook),
            ("access-log hook alone (LOG_FORMAT=json)", handlers["json"], hook),
            ("access-log hook through logging's record path", handlers["plain"], hook),
            ("metrics recording alone", handlers["text"], recording),
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
    requests = timings["request, metrics and access log off"]
    for name, values in timings.items():
        if name == "request, metrics and access log off":
            continue
        # Requests: their added time; hooks: their own time; both against the same round's "off".
        added = name.startswith("request")
        shares = [100 * (v - added * r) / r for v, r in zip(values, requests, strict=True)]
        each = ", ".join(f"{share:+.1f}" if added else f"{share:.1f}" for share in shares)
        what = "added to a request" if added else "of a request"
        print(f"{name}: {statistics.median(shares):.1f} % {what} (rounds: {each})")


if __name__ == "__main__":
    main()

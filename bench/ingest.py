"""Benchmark: bulk load (`tectonite ingest`) rows/s and Stream Ingest API records/s.

Run after the quick start (uses DATABASE_URL, or the embedded database in TECTONITE_DATA_DIR):

    python bench/ingest.py                   # 1,000,000 CSV rows; API for 20 s at 8 connections
    python bench/ingest.py --rows 200000 --seconds 10 --connections 8

What it does, in the workspace `bench_ingest` (re-created on every run):
1. applies a push source and two views with 10 features each (5 Float64, 3 Int64, 2 String):
   the table `bench_table` (bulk target) and the stream view `bench_stream` (API target);
2. writes a CSV of --rows distinct entities and times `tectonite ingest` as a subprocess
   (wall time, interpreter start-up included);
3. starts `tectonite serve` (its production gunicorn settings), creates an editor key, and
   drives POST /ingest with 100-record requests over keep-alive connections from a separate
   client process for --seconds (after a warm-up), rotating over many entity keys;
4. measures the baseline of SPEC §8 the same way: a trivial Flask endpoint under the same
   gunicorn configuration that parses a small JSON body and answers a small one with orjson;
5. prints the figures and appends them as a markdown table to --results (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import csv
import http.client
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = "bench_ingest"
FLOATS = [f"f{i}" for i in range(5)]
INTS = [f"i{i}" for i in range(3)]
STRINGS = [f"s{i}" for i in range(2)]
FEATURES = [*FLOATS, *INTS, *STRINGS]

_TYPES = {
    **dict.fromkeys(FLOATS, "Float64"),
    **dict.fromkeys(INTS, "Int64"),
    **dict.fromkeys(STRINGS, "String"),
}
_FEATURE_LIST = [{"name": n, "type": t} for n, t in _TYPES.items()]
DEFINITIONS = yaml.safe_dump(
    {
        "entities": [{"name": "bench_user", "join_keys": [{"name": "user_id", "type": "String"}]}],
        "push_sources": [
            {
                "name": "bench_events",
                "timestamp_field": "timestamp",
                "schema": [
                    {"name": "user_id", "type": "String"},
                    *_FEATURE_LIST,
                    {"name": "timestamp", "type": "Timestamp"},
                ],
            }
        ],
        "feature_views": [
            {
                "name": "bench_stream",
                "entities": ["bench_user"],
                "source": "bench_events",
                "features": _FEATURE_LIST,
            },
            {
                "name": "bench_table",
                "kind": "table",
                "entities": ["bench_user"],
                "features": _FEATURE_LIST,
            },
        ],
    },
    sort_keys=False,
)


def tectonite(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
    )


def feature_values(i: int) -> list[object]:
    return [
        *(i * 0.25 + k for k in range(5)),
        *(i * 3 + k for k in range(3)),
        f"segment_{i % 17}",
        f"city_{i % 101}",
    ]


# ----------------------------------------------------------------------------- bulk


def bench_bulk(rows: int, directory: Path) -> dict[str, float]:
    path = directory / "bench_table.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["user_id", "timestamp", *FEATURES])
        for i in range(rows):
            stamp = (
                f"2026-11-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
            )
            writer.writerow([f"user_{i}", stamp, *feature_values(i)])
    started = time.perf_counter()
    result = tectonite(
        "ingest", "--workspace", WORKSPACE, "--feature-view", "bench_table", str(path)
    )
    elapsed = time.perf_counter() - started
    print(result.stdout.strip())
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "file_mb": path.stat().st_size / 1e6,
    }


# ----------------------------------------------------------------------------- HTTP load


def _client_process(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    payloads: list[bytes],
    threads: int,
    warmup: float,
    seconds: float,
    queue: multiprocessing.Queue,
) -> None:
    """`threads` keep-alive connections; returns latencies (s) of requests in the window."""
    start = time.perf_counter() + warmup
    end = start + seconds
    results: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        n = index
        while True:
            began = time.perf_counter()
            if began >= end:
                break
            conn.request("POST", path, payloads[n % len(payloads)], headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                errors.append(f"{response.status} {body[:200]!r}")
                break
            if began >= start:
                results[index].append(time.perf_counter() - began)
            n += threads
        conn.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(([x for r in results for x in r], errors))


def drive(
    base_url: str,
    path: str,
    headers: dict[str, str],
    payloads: list[bytes],
    connections: int,
    seconds: float,
    warmup: float = 3.0,
) -> dict[str, float]:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=_client_process,
        args=(host, int(port), path, headers, payloads, connections, warmup, seconds, queue),
    )
    process.start()
    latencies, errors = queue.get()
    process.join()
    if errors:
        raise SystemExit(f"requests failed: {errors[:3]}")
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
    }


def start_server(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in process.stdout or ():
        if " at http" in line:
            url = line.rsplit(" at ", 1)[1].strip().removesuffix("/api")
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, url
    raise SystemExit("server did not start")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=60)


def bench_api(connections: int, seconds: float, batch: int) -> dict[str, float]:
    key = tectonite(
        "api-key",
        "create",
        "--description",
        "bench ingest",
        "--workspace",
        WORKSPACE,
        "--role",
        "editor",
    ).stdout.strip()
    now = datetime.now(UTC).isoformat()
    payloads = []
    for p in range(200):  # 20,000 distinct entities with 100-record requests
        records = []
        for r in range(batch):
            i = p * batch + r
            record = dict(zip(FEATURES, feature_values(i), strict=True))
            records.append({"record": {"user_id": f"api_user_{i}", **record, "timestamp": now}})
        payloads.append(
            orjson.dumps(
                {
                    "workspace_name": WORKSPACE,
                    "dry_run": False,
                    "records": {"bench_events": records},
                }
            )
        )
    server, url = start_server([sys.executable, "-m", "app.cli", "serve", "--port", "0"])
    try:
        figures = drive(
            url, "/ingest", {"Authorization": f"Tecton-key {key}"}, payloads, connections, seconds
        )
    finally:
        stop(server)
    figures["records_per_s"] = figures["requests_per_s"] * batch
    return figures


def bench_baseline(connections: int, seconds: float) -> dict[str, float]:
    server, url = start_server([sys.executable, str(Path(__file__).resolve()), "--serve-baseline"])
    try:
        body = orjson.dumps({"featureServiceName": "fs", "joinKeyMap": {"user_id": "u1"}})
        return drive(url, "/baseline", {}, [body], connections, seconds)
    finally:
        stop(server)


def serve_baseline() -> None:
    """The SPEC §8 baseline: parse a small JSON body, answer a small one, same gunicorn setup."""
    sys.path.insert(0, str(ROOT))
    from flask import Flask, Response, request

    from app.config import Settings
    from app.server import GunicornServer

    def factory(_settings: Settings) -> Flask:
        app = Flask("baseline")

        @app.post("/baseline")
        def baseline() -> Response:
            data = orjson.loads(request.get_data())
            return Response(
                orjson.dumps({"result": {"features": [data.get("featureServiceName")]}}),
                mimetype="application/json",
            )

        return app

    settings = Settings.from_env().replace(port=0)
    GunicornServer(
        settings, app_factory=factory, on_ready=lambda url: print(f"baseline at {url}", flush=True)
    ).run()


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline()
        return

    tectonite("workspace", "delete", WORKSPACE, "--yes", check=False)
    tectonite("workspace", "create", WORKSPACE)
    with tempfile.TemporaryDirectory() as directory:
        repo = Path(directory) / "features.yaml"
        repo.write_text(DEFINITIONS)
        tectonite("apply", "-f", str(repo), "--workspace", WORKSPACE, "--yes")
        bulk = bench_bulk(args.rows, Path(directory))
    print(
        f"bulk: {bulk['rows']:,} rows in {bulk['seconds']:.1f} s = {bulk['rows_per_s']:,.0f} rows/s"
    )
    api = bench_api(args.connections, args.seconds, args.batch)
    print(
        f"api: {api['records_per_s']:,.0f} records/s ({api['requests_per_s']:,.1f} req/s, "
        f"p50 {api['p50_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms)"
    )
    base = bench_baseline(args.connections, args.seconds)
    print(
        f"baseline: {base['requests_per_s']:,.0f} req/s (p50 {base['p50_ms']:.2f} ms, "
        f"p99 {base['p99_ms']:.2f} ms)"
    )

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ratio = api["requests_per_s"] / base["requests_per_s"]
    table = [
        (
            f"Bulk load (`tectonite ingest`, CSV, 10-feature table, {bulk['rows']:,} rows, "
            f"{bulk['file_mb']:.0f} MB; wall time incl. process start-up)",
            f"**{bulk['rows_per_s']:,.0f} rows/s** ({bulk['seconds']:.1f} s)",
            "≥ 50,000 rows/s",
        ),
        (
            f"Stream Ingest API (`POST /ingest`, {args.batch}-record requests, 10 features, "
            f"{args.connections} keep-alive connections, {args.seconds:.0f} s)",
            f"**{api['records_per_s']:,.0f} records/s** ({api['requests_per_s']:,.1f} requests/s)",
            "≥ 5,000 records/s",
        ),
        (
            "Stream Ingest API latency per request",
            f"p50 {api['p50_ms']:.1f} ms, p90 {api['p90_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms",
            "-",
        ),
        (
            "Baseline (trivial Flask + orjson endpoint, same gunicorn settings, "
            f"{args.connections} connections)",
            f"{base['requests_per_s']:,.0f} requests/s, p50 {base['p50_ms']:.2f} ms, "
            f"p99 {base['p99_ms']:.2f} ms",
            "-",
        ),
        (
            "Ingest requests/s / baseline requests/s",
            f"{ratio:.3f} (each ingest request writes {args.batch} rows)",
            "-",
        ),
    ]
    lines = [
        f"\n### Run of {stamp} ({machine})\n",
        "| Measure | Figure | Target |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in table),
        "",
    ]
    with args.results.open("a") as file:
        file.write("\n".join(lines))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()

"""The aggregation benchmark (issue 14), in one command:

    python bench/aggregations.py             # 5,000 customers, 60 orders each over 30 days
    python bench/aggregations.py --quick     # shorter runs

It creates a fresh database, applies bench/aggregations.yaml, loads the plain 3-view service's
values and an events file of orders with `tectonite ingest`, starts `tectonite serve` and, in
the same run and interleaved, measures with wrk:
- get-features of the plain 3-view service (`bench_service`);
- get-features of a service with 6 aggregate features over windows up to 30 d at a 1 h interval
  (`bench_aggregates`; every read folds the tiles of its customer's 30 days);
- the Stream Ingest API into the aggregate view, 100 records a request.
Targets: aggregates at least 0.7x the plain service's req/s; ≥ 5,000 events/s ingested.
Results go to bench/results/aggregations-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as shared  # noqa: E402  (bench/run.py's database, server and wrk helpers)

WORKSPACE = "bench"
PLAIN, AGGREGATES = "bench_service", "bench_aggregates"
CATEGORIES = ["books", "games", "music", "garden", "tools", "food", "toys"]


def write_orders(
    path: Path, customers: int, per_customer: int, now: datetime, rng: random.Random
) -> int:
    """`per_customer` orders per customer at random instants of the last 30 days."""
    rows = 0
    with path.open("w") as out:
        out.write("customer_id,amount,category,timestamp\n")
        for i in range(customers):
            for _ in range(per_customer):
                at = now - timedelta(seconds=rng.randrange(30 * 86_400 - 3_600))
                out.write(
                    f"c{i},{rng.randrange(1, 50_000) / 100},{rng.choice(CATEGORIES)},"
                    f"{at.strftime('%Y-%m-%dT%H:%M:%S')}Z\n"
                )
                rows += 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--orders", type=int, default=60, help="orders per customer (30 days)")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="5 s runs, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeats = 5, 1
    wrk = shared.ensure_wrk()
    rng = random.Random(11)
    now = datetime.now(UTC)
    results: dict = {
        "date": now.isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "loadavg_before": os.getloadavg()[0]},
        "customers": args.customers,
        "orders_per_customer": args.orders,
    }
    with shared.fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        tectonite = shared.tectonite
        tectonite(env, "workspace", "create", WORKSPACE)
        tectonite(
            env, "apply", "-f", str(BENCH / "aggregations.yaml"), "--workspace", WORKSPACE, "--yes"
        )
        consumer = tectonite(
            env, "api-key", "create", "--description", "read", "--workspace", WORKSPACE
        ).strip()
        editor = tectonite(env, "api-key", "create", "--description", "write", "--workspace", WORKSPACE,
                           "--role", "editor").strip()  # fmt: skip
        for view, path in shared.write_csvs(work, args.customers, rng).items():
            tectonite(env, "ingest", "--workspace", WORKSPACE, "--feature-view", view, str(path))
        orders = work / "orders.csv"
        count = write_orders(orders, args.customers, args.orders, now, rng)
        shared.log(f"loading {count:,} orders into customer_orders")
        output = tectonite(
            env,
            "ingest",
            "--workspace",
            WORKSPACE,
            "--feature-view",
            "customer_orders",
            str(orders),
        )
        shared.log(output.strip())

        def key(_i: int) -> str:
            return f"c{rng.randrange(args.customers)}"

        def reads(service: str, name: str) -> Path:
            return shared.bodies(work / name, lambda i: {"params": {
                "workspaceName": WORKSPACE, "featureServiceName": service,
                "joinKeyMap": {"customer_id": key(i)}}}, 20_000)  # fmt: skip

        plain, aggregates = reads(PLAIN, "plain.jsonl"), reads(AGGREGATES, "aggregates.jsonl")
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S")
        # 100 records a request, for 100 random customers: each a new event in their tile.
        ingest = shared.bodies(work / "ingest.jsonl", lambda i: {
            "workspace_name": WORKSPACE, "dry_run": False,
            "records": {"orders": [{"record": {
                "customer_id": key(i), "amount": j * 1.5, "category": CATEGORIES[j % 7],
                "timestamp": f"{stamp}.{i % 1000:03d}{j:03d}Z"}} for j in range(100)]}}, 500)  # fmt: skip

        read_headers = {"Authorization": f"Tecton-key {consumer}"}
        write_headers = {"Authorization": f"Tecton-key {editor}"}
        get = "/api/v1/feature-service/get-features"
        server = shared.Server([sys.executable, "-m", "app.cli", "serve", "--port", "0"],
                               {k: v for k, v in env.items() if k != "LOG_LEVEL"})  # fmt: skip
        try:
            targets = {
                "plain 3-view service": (get, plain, read_headers),
                "6 aggregate features (≤ 30 d, 1 h)": (get, aggregates, read_headers),
                "Stream Ingest API (100 records)": ("/ingest", ingest, write_headers),
            }
            for target, file, headers in targets.values():  # warm up
                shared.measure(wrk, server, target, file, args.connections, 3, headers)
            runs: dict[str, list[dict]] = {name: [] for name in targets}
            for _ in range(args.repeats):
                for name, (target, file, headers) in targets.items():
                    runs[name].append(shared.measure(wrk, server, target, file, args.connections,
                                                     args.duration, headers))  # fmt: skip
            summary = {name: shared.median_of(r) for name, r in runs.items()}
            for name, point in summary.items():
                shared.log(f"{name}: {point['rps']:.0f} req/s, p99 {point['p99_ms']:.2f} ms, "
                           f"errors {point['errors']}")  # fmt: skip
        finally:
            server.stop()
    plain_rps = summary["plain 3-view service"]["rps"]
    aggregate_rps = summary["6 aggregate features (≤ 30 d, 1 h)"]["rps"]
    events_per_s = summary["Stream Ingest API (100 records)"]["rps"] * 100
    results["points"] = summary
    results["aggregates_vs_plain"] = aggregate_rps / plain_rps
    results["ingest_events_per_s"] = events_per_s
    results["machine"]["loadavg_after"] = os.getloadavg()[0]
    shared.log(f"aggregates/plain: {aggregate_rps / plain_rps:.2f}x (target ≥ 0.70); "
               f"Stream Ingest: {events_per_s:,.0f} events/s (target ≥ 5,000); "
               f"load average {results['machine']['loadavg_before']:.1f} → "
               f"{results['machine']['loadavg_after']:.1f} on {os.cpu_count()} cores")  # fmt: skip
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    path = out / f"aggregations-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    shared.log(f"results in {path}")


if __name__ == "__main__":
    main()

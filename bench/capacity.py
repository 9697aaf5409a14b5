"""The capacity plan's figures (issue 18, README "Running at scale"), in one command:

    python bench/capacity.py                 # 50,000 entities, 2,000 customers' orders
    python bench/capacity.py --quick         # shorter runs

It creates a fresh database (DATABASE_URL's server, or an embedded throwaway one; it must run
on this machine, as its processes' CPU is read from /proc), loads bench/features.yaml's views
and bench/aggregations.yaml's orders, starts `tectonite serve` as production would run it
(TECTONITE_EMULATOR_API=off, TECTONITE_JOURNAL=off, access log on) and drives it with wrk for
each kind of request. For each it measures:
- server CPU per request: user + system time of the serve process tree;
- PostgreSQL CPU per request: user + system time of the database's backends and of the
  server's background processes (WAL writer, checkpointer, autovacuum...), from /proc;
- for ingest, WAL bytes per record (pg_current_wal_lsn before and after).
and turns them into cores per 10,000 requests/s. The load average is recorded before and
after: on a busy machine CPU per request is inflated (cache misses, contention), so the figures
are an upper bound. Results go to bench/results/capacity-<timestamp>.json and are printed as
the README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import aggregations  # noqa: E402  (bench/aggregations.py's orders file)
import run as shared  # noqa: E402  (bench/run.py's database, server and wrk helpers)

PLAIN_WS, AGG_WS = "bench", "agg"
GET = "/api/v1/feature-service/get-features"
BATCH = "/api/v1/feature-service/get-features-batch"
INGEST_RECORDS = 100
_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE (datname = :db OR datname IS NULL) "
    "AND pid <> pg_backend_pid()"
)


class Postgres:
    """CPU seconds of the database's processes (this machine's /proc), and its WAL position."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.database = self.engine.url.database
        self.seen: dict[int, psutil.Process] = {}

    def _pids(self) -> list[int]:
        with self.engine.connect() as connection:
            return [row[0] for row in connection.execute(text(_BACKENDS), {"db": self.database})]

    def cpu_seconds(self) -> dict[int, float]:
        """Per process: CPU seconds so far (processes seen before and since ended are kept
        with their last figure, so a backend that exits is not counted as negative)."""
        times: dict[int, float] = {}
        for pid in self._pids():
            process = self.seen.get(pid)
            try:
                if process is None:
                    process = self.seen[pid] = psutil.Process(pid)
                cpu = process.cpu_times()
                times[pid] = cpu.user + cpu.system
            except psutil.Error:
                continue
        return times

    def wal_bytes(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one()
            )

    def size(self, table: str) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}
                ).scalar_one()
            )

    def rows(self, table: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots (new processes count from zero)."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def measure(wrk: str, server: shared.Server, database: Postgres, target: dict[str, Any],
            connections: int, seconds: int) -> dict[str, Any]:  # fmt: skip
    server_before, pg_before, wal_before = (
        server.cpu_seconds(),
        database.cpu_seconds(),
        database.wal_bytes(),
    )
    result = shared.run_wrk(wrk, server.url, target["path"], target["file"], connections,
                            seconds, target["headers"])  # fmt: skip
    server_cpu = server.cpu_seconds() - server_before
    pg_cpu = spent(pg_before, database.cpu_seconds())
    wal = database.wal_bytes() - wal_before
    requests = max(result["requests"], 1)
    return {
        "rps": result["rps"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
        "server_cpu_ms": 1000 * server_cpu / requests,
        "postgres_cpu_ms": 1000 * pg_cpu / requests,
        "wal_bytes_per_request": wal / requests,
    }


def summarise(runs: list[dict[str, Any]], items: int) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_ms", "postgres_cpu_ms", "wal_bytes_per_request")
    point = {k: statistics.median(r[k] for r in runs) for k in keys}
    point["errors"] = sum(r["errors"] for r in runs)
    point["items_per_request"] = items
    # Cores busy at 10,000 requests/s: (ms of CPU per request) x 10,000 / 1,000.
    point["server_cores_per_10k"] = point["server_cpu_ms"] * 10
    point["postgres_cores_per_10k"] = point["postgres_cpu_ms"] * 10
    return point


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--orders", type=int, default=60, help="orders per customer (30 days)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="5 s runs, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeats = 5, 1
    wrk = shared.ensure_wrk()
    rng = random.Random(18)
    now = datetime.now(UTC)
    results: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "loadavg_before": os.getloadavg()},
        "entities": args.entities,
        "connections": args.connections,
        "duration": args.duration,
        "repeats": args.repeats,
    }
    with shared.fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        tectonite = shared.tectonite
        for workspace, definitions in ((PLAIN_WS, "features.yaml"), (AGG_WS, "aggregations.yaml")):
            tectonite(env, "workspace", "create", workspace)
            tectonite(env, "apply", "-f", str(BENCH / definitions), "--workspace", workspace,
                      "--yes")  # fmt: skip
        key = tectonite(env, "api-key", "create", "--description", "capacity", "--admin").strip()
        headers = {"Authorization": f"Tecton-key {key}"}
        shared.log(f"loading {args.entities:,} entities per view")
        for view, path in shared.write_csvs(work, args.entities, rng).items():
            tectonite(env, "ingest", "--workspace", PLAIN_WS, "--feature-view", view, str(path))
        orders = work / "orders.csv"
        count = aggregations.write_orders(orders, args.customers, args.orders, now, rng)
        shared.log(f"loading {count:,} orders")
        tectonite(env, "ingest", "--workspace", AGG_WS, "--feature-view", "customer_orders",
                  str(orders))  # fmt: skip

        def entity(_i: int) -> str:
            return f"c{rng.randrange(args.entities)}"

        def customer(_i: int) -> str:
            return f"c{rng.randrange(args.customers)}"

        def params(workspace: str, service: str, **more: Any) -> dict[str, Any]:
            return {"params": {"workspaceName": workspace, "featureServiceName": service, **more}}

        stamp = now.strftime("%Y-%m-%dT%H:%M:%S")
        targets: dict[str, dict[str, Any]] = {
            "get-features (3 views)": {
                "path": GET, "items": 1,
                "file": shared.bodies(work / "plain.jsonl", lambda i: params(
                    PLAIN_WS, "bench_service", joinKeyMap={"customer_id": entity(i)}), 20_000),
            },
            "get-features realtime": {
                "path": GET, "items": 1,
                "file": shared.bodies(work / "realtime.jsonl", lambda i: params(
                    PLAIN_WS, "bench_service_realtime", joinKeyMap={"customer_id": entity(i)},
                    requestContextMap={"amount": 120.5}), 20_000),
            },
            "get-features aggregate (6 features, ≤ 30 d)": {
                "path": GET, "items": 1,
                "file": shared.bodies(work / "aggregate.jsonl", lambda i: params(
                    AGG_WS, "bench_aggregates", joinKeyMap={"customer_id": customer(i)}), 20_000),
            },
            "get-features-batch (10 rows)": {
                "path": BATCH, "items": 10,
                "file": shared.bodies(work / "batch.jsonl", lambda i: params(
                    PLAIN_WS, "bench_service",
                    requestData=[{"joinKeyMap": {"customer_id": entity(i)}} for _ in range(10)]),
                    2_000),
            },
            f"Stream Ingest ({INGEST_RECORDS} records)": {
                "path": "/ingest", "items": INGEST_RECORDS,
                "file": shared.bodies(work / "ingest.jsonl", lambda i: {
                    "workspace_name": PLAIN_WS, "dry_run": False,
                    "records": {"bench_events": [{"record": {
                        "customer_id": entity(i), "clicks_1h": j, "spend_1h": j * 1.5,
                        "last_page": "cart", "timestamp": f"{stamp}.{i % 1000:03d}{j:03d}Z"}}
                        for j in range(INGEST_RECORDS)]}}, 500),
            },
        }  # fmt: skip
        # The same plain read on a server in PgBouncer mode (TECTONITE_DATABASE_POOLER, here
        # on a direct connection): what giving up prepared statements costs.
        targets["get-features (3 views), PgBouncer mode"] = {
            **targets["get-features (3 views)"], "pooled": True,
        }  # fmt: skip
        for target in targets.values():
            target["headers"] = headers
        server_env = {k: v for k, v in env.items() if k != "LOG_LEVEL"}
        server_env.update({"TECTONITE_EMULATOR_API": "off", "TECTONITE_JOURNAL": "off"})
        database = Postgres(url)
        command = [sys.executable, "-m", "app.cli", "serve", "--port", "0"]
        server = shared.Server(command, server_env)
        pooled = shared.Server(command, {**server_env, "TECTONITE_DATABASE_POOLER": "pgbouncer"})
        for target in targets.values():
            target["server"] = pooled if target.get("pooled") else server
        results["settings"] = {
            "server": os.environ.get("TECTONITE_SERVER", "granian"),
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
            "TECTONITE_THREADS": os.environ.get("TECTONITE_THREADS", "8"),
        }
        try:
            shared.log("warming up")
            for target in targets.values():
                measure(wrk, target["server"], database, target, args.connections, 3)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for _ in range(args.repeats):  # interleaved
                for name, target in targets.items():
                    runs[name].append(measure(wrk, target["server"], database, target,
                                              args.connections, args.duration))  # fmt: skip
            points = {name: summarise(r, targets[name]["items"]) for name, r in runs.items()}
            results["points"] = points
            results["online_values"] = {
                "rows": database.rows("online_values"),
                "bytes": database.size("online_values"),
            }
            results["aggregation_tiles"] = {
                "rows": database.rows("aggregation_tiles"),
                "bytes": database.size("aggregation_tiles"),
            }
        finally:
            server.stop()
            pooled.stop()
            database.engine.dispose()
    results["machine"]["loadavg_after"] = os.getloadavg()
    print_table(results)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    path = out / f"capacity-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    shared.log(f"results in {path}")


def print_table(results: dict[str, Any]) -> None:
    print()
    print("| Request | req/s here | p99 ms | server CPU ms/req | PostgreSQL CPU ms/req | "
          "server cores per 10k req/s | PostgreSQL cores per 10k req/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, p in results["points"].items():
        print(f"| {name} | {p['rps']:,.0f} | {p['p99_ms']:.1f} | {p['server_cpu_ms']:.2f} | "
              f"{p['postgres_cpu_ms']:.2f} | {p['server_cores_per_10k']:.1f} | "
              f"{p['postgres_cores_per_10k']:.1f} |")  # fmt: skip
    ingest = next(p for n, p in results["points"].items() if n.startswith("Stream Ingest"))
    per_record = ingest["wal_bytes_per_request"] / ingest["items_per_request"]
    print(f"\nIngest WAL: {per_record:,.0f} bytes per record "
          f"({per_record * 10_000 / 2**20:.1f} MiB/s at 10,000 records/s)")  # fmt: skip
    values = results["online_values"]
    print(f"online_values: {values['rows']:,} rows, {values['bytes'] / 2**20:.1f} MiB "
          f"({values['bytes'] / max(values['rows'], 1):.0f} bytes per row with its index)")  # fmt: skip
    machine = results["machine"]
    print(f"load average {machine['loadavg_before'][0]:.2f} before, "
          f"{machine['loadavg_after'][0]:.2f} after, on {machine['nproc']} cores")  # fmt: skip


if __name__ == "__main__":
    main()

"""What metrics and the access log cost on the hot path (issue 16's ≤ 5 % budget):

    python bench/observability.py            # 10,000 entities, 3 interleaved 10 s runs

Starts three `tectonite serve` processes on one database: everything off
(TECTONITE_METRICS=off TECTONITE_ACCESS_LOG=off), metrics only, and the defaults (metrics and
the access log on), and drives get-features at 8 connections against each in turn, rotating the
order. Prints the medians and each one's cost against "off".
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

from run import (
    BENCH,
    SERVICE,
    WORKSPACE,
    Server,
    bodies,
    ensure_wrk,
    fresh_database,
    log,
    measure,
    tectonite,
    write_csvs,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    wrk = ensure_wrk()
    rng = random.Random(7)
    with fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
        tectonite(env, "workspace", "create", WORKSPACE)
        tectonite(env, "apply", "-f", str(BENCH / "features.yaml"), "--workspace", WORKSPACE,
                  "--yes")  # fmt: skip
        consumer = tectonite(env, "api-key", "create", "--description", "bench-read",
                             "--workspace", WORKSPACE).strip()  # fmt: skip
        for view, path in write_csvs(work, args.entities, rng).items():
            tectonite(env, "ingest", "--workspace", WORKSPACE, "--feature-view", view, str(path))
        single = bodies(work / "single.jsonl", lambda i: {"params": {
            "workspaceName": WORKSPACE, "featureServiceName": SERVICE,
            "joinKeyMap": {"customer_id": f"c{rng.randrange(args.entities)}"}}}, 20_000)  # fmt: skip
        command = [sys.executable, "-m", "app.cli", "serve", "--port", "0"]
        servers = {
            "off": Server(command, {**env, "TECTONITE_METRICS": "off",
                                    "TECTONITE_ACCESS_LOG": "off"}),
            "metrics": Server(command, {**env, "TECTONITE_ACCESS_LOG": "off"}),
            "metrics + access log": Server(command, env),
        }  # fmt: skip
        headers = {"Authorization": f"Tecton-key {consumer}"}
        path = "/api/v1/feature-service/get-features"
        try:
            for server in servers.values():
                measure(wrk, server, path, single, args.connections, 3, headers)
            runs: dict[str, list[dict]] = {name: [] for name in servers}
            names = list(servers)
            for repeat in range(args.repeats):
                for name in names[repeat % 3 :] + names[: repeat % 3]:
                    result = measure(wrk, servers[name], path, single, args.connections,
                                     args.duration, headers)  # fmt: skip
                    runs[name].append(result)
                    log(f"{name}: {result['rps']:,.0f} req/s")
        finally:
            for server in servers.values():
                server.stop()
    medians = {n: statistics.median(r["rps"] for r in rs) for n, rs in runs.items()}
    cpu = {n: statistics.median(r["cpu_ms_per_request"] for r in rs) for n, rs in runs.items()}
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("| Setting | req/s (median) | server CPU ms/req | throughput vs off | runs |")
    print("|---|---|---|---|---|")
    for name in runs:
        each = ", ".join(f"{r['rps']:,.0f}" for r in runs[name])
        cost = 100 * (medians[name] / medians["off"] - 1)
        print(f"| {name} | {medians[name]:,.0f} | {cpu[name]:.3f} | {cost:+.1f} % | {each} |")


if __name__ == "__main__":
    main()

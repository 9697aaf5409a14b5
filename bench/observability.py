"""What metrics and the access log cost on the hot path (issue 16's ≤ 5 % budget):

    python bench/observability.py            # 10,000 entities, 3 interleaved 10 s runs

Starts three `tectonite serve` processes on one database: everything off
(TECTONITE_METRICS=off TECTONITE_ACCESS_LOG=off), metrics only, and the defaults (metrics and
the access log on), and drives get-features at 8 connections against each in turn, rotating the
order. Prints the medians, each one's cost against the same round's "off" (throughput and server
CPU per request; the median over rounds), and the load average before and after (the machine
may be shared: prefer many short rounds, e.g. `--duration 4 --repeats 15`).

`--together` drives the three servers at the same time instead, each with its own wrk and
`--connections`: on a saturated machine they share the cores and whatever else runs there
alike, so the throughput ratios show what each setting costs in CPU even while outside load
comes and goes (a sequential run's rounds see different loads).

Each server's stderr (its logs, the access log) goes to a file, as to a log file or a container
runtime's log driver; `--logs pipe` reads it through this process instead (a Python reader
thread per server, whose per-line work competes with the servers for the same cores).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
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
    parser.add_argument("--logs", choices=("file", "pipe"), default="file")
    parser.add_argument("--together", action="store_true",
                        help="drive the three servers at the same time (each with --connections)")  # fmt: skip
    args = parser.parse_args()
    load_before = os.getloadavg()
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
        settings = {
            "off": {"TECTONITE_METRICS": "off", "TECTONITE_ACCESS_LOG": "off"},
            "metrics": {"TECTONITE_ACCESS_LOG": "off"},
            "metrics + access log": {},
        }
        logs = {name: work / f"server-{i}.log" for i, name in enumerate(settings)}
        servers = {
            name: Server(command, {**env, **changes},
                         log_file=logs[name] if args.logs == "file" else None)
            for name, changes in settings.items()
        }  # fmt: skip
        headers = {"Authorization": f"Tecton-key {consumer}"}
        path = "/api/v1/feature-service/get-features"
        try:
            for server in servers.values():
                measure(wrk, server, path, single, args.connections, 3, headers)
            runs: dict[str, list[dict]] = {name: [] for name in servers}
            names = list(servers)
            for repeat in range(args.repeats):
                if args.together:
                    with ThreadPoolExecutor(len(names)) as pool:
                        futures = {
                            name: pool.submit(measure, wrk, servers[name], path, single,
                                              args.connections, args.duration, headers)
                            for name in names
                        }  # fmt: skip
                    for name, future in futures.items():
                        runs[name].append(future.result())
                    log(", ".join(f"{n}: {runs[n][-1]['rps']:,.0f} req/s" for n in names))
                    continue
                for name in names[repeat % 3 :] + names[: repeat % 3]:
                    result = measure(wrk, servers[name], path, single, args.connections,
                                     args.duration, headers)  # fmt: skip
                    runs[name].append(result)
                    log(f"{name}: {result['rps']:,.0f} req/s")
            access_lines = 0
            if args.logs == "file":
                with logs["metrics + access log"].open("rb") as lines:
                    access_lines = sum(b"tectonite.access" in line for line in lines)
        finally:
            for server in servers.values():
                server.stop()
    medians = {n: statistics.median(r["rps"] for r in rs) for n, rs in runs.items()}
    cpu = {n: statistics.median(r["cpu_ms_per_request"] for r in rs) for n, rs in runs.items()}
    mode = "together" if args.together else "in turn"
    print(f"servers driven {mode}, {args.connections} connections each, {args.duration} s rounds")
    print(
        f"load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; logs to a {args.logs}"
    )
    if args.logs == "file":
        served = sum(r["requests"] for r in runs["metrics + access log"])
        print(
            f"access-log lines written by the default server: {access_lines:,} "
            f"(requests in its timed runs: {served:,})"
        )
    print(
        "| Setting | req/s (median) | server CPU ms/req (median) | throughput vs off "
        "(median of rounds) | CPU/req vs off (median of rounds) | req/s of each round |"
    )
    print("|---|---|---|---|---|---|")
    for name in runs:
        each = ", ".join(f"{r['rps']:,.0f}" for r in runs[name])
        # Each round runs the three settings back to back: its ratios share the machine's load,
        # which on a shared machine drifts far more between rounds than within one.
        pairs = list(zip(runs[name], runs["off"], strict=True))
        rps = statistics.median(100 * (r["rps"] / o["rps"] - 1) for r, o in pairs)
        cpu_cost = statistics.median(
            100 * (r["cpu_ms_per_request"] / o["cpu_ms_per_request"] - 1) for r, o in pairs
        )
        print(f"| {name} | {medians[name]:,.0f} | {cpu[name]:.3f} | {rps:+.1f} % | "
              f"{cpu_cost:+.1f} % | {each} |")  # fmt: skip


if __name__ == "__main__":
    main()

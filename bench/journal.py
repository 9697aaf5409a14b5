"""The request journal's cost: get-features with TECTONITE_JOURNAL=on versus off.

    python bench/journal.py                  # 10,000 entities, 5 interleaved 8 s runs each

Seeds bench/features.yaml like bench/run.py, starts two `tectonite serve` (production gunicorn
settings), one with the journal on (the default) and one with it off, and drives both with wrk
at 8 keep-alive connections, alternating runs. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: database, data, servers, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    wrk = run.ensure_wrk()
    rng = random.Random(7)
    with run.fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        run.tectonite(env, "workspace", "create", run.WORKSPACE)
        run.tectonite(env, "apply", "-f", str(run.BENCH / "features.yaml"),
                      "--workspace", run.WORKSPACE, "--yes")  # fmt: skip
        consumer = run.tectonite(env, "api-key", "create", "--description", "bench-read",
                                 "--workspace", run.WORKSPACE).strip()  # fmt: skip
        for view, path in run.write_csvs(work, args.entities, rng).items():
            run.tectonite(env, "ingest", "--workspace", run.WORKSPACE, "--feature-view", view,
                          str(path))  # fmt: skip
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("VACUUM (ANALYZE) online_values"))
            conn.execute(text("CHECKPOINT"))
        engine.dispose()
        single = run.bodies(work / "single.jsonl", lambda i: {"params": {
            "workspaceName": run.WORKSPACE, "featureServiceName": run.SERVICE,
            "joinKeyMap": {"customer_id": f"c{rng.randrange(args.entities)}"}}},
            run.KEYS_IN_ROTATION)  # fmt: skip
        command = [sys.executable, "-m", "app.cli", "serve", "--port", "0"]
        servers: dict[str, run.Server] = {}
        headers = {"Authorization": f"Tecton-key {consumer}"}
        path = "/api/v1/feature-service/get-features"
        runs: dict[str, list[dict]] = {}
        try:
            for name, switch in (("journal on", "on"), ("journal off", "off")):
                servers[name] = run.Server(command, {**env, "TECTONITE_JOURNAL": switch})
                runs[name] = []
            for server in servers.values():
                run.measure(wrk, server, path, single, 8, 3, headers)
            for _ in range(args.repeats):
                for name, server in servers.items():
                    runs[name].append(
                        run.measure(wrk, server, path, single, 8, args.duration, headers)
                    )
                    run.log(f"{name}: {runs[name][-1]['rps']:.0f} req/s")
        finally:
            for server in servers.values():
                server.stop()
    on, off = runs["journal on"], runs["journal off"]

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"\nloadavg {os.getloadavg()[0]:.1f}; {args.repeats} interleaved {args.duration} s runs, "
          "8 connections, get-features (3 views, 10 features)\n")  # fmt: skip
    print("| Journal | req/s (median) | runs | p99 ms | server CPU ms/req | errors |")
    print("|---|---|---|---|---|---|")
    for name, rows in runs.items():
        each = ", ".join(f"{r['rps']:.0f}" for r in rows)
        print(f"| {name} | {med(rows, 'rps'):,.0f} | {each} | "
              f"{med(rows, 'p99_ms'):.2f} | {med(rows, 'cpu_ms_per_request'):.3f} | "
              f"{sum(r['errors'] for r in rows)} |")  # fmt: skip
    cost = 1 - med(on, "rps") / med(off, "rps")
    # Each "on" run is paired with the "off" run right after it: a pair shares the machine's
    # load at that moment, so the median of the pairs' ratios is the steadier figure.
    paired = statistics.median(1 - a["rps"] / b["rps"] for a, b in zip(on, off, strict=True))
    print(f"\nJournal cost: {cost * 100:.1f} % of get-features throughput (median vs median); "
          f"{paired * 100:.1f} % (median of {len(on)} paired runs).")  # fmt: skip


if __name__ == "__main__":
    main()

"""Tectonite's benchmark, in one command (after the quick start):

    python bench/run.py                      # 100,000 entities, ~6 minutes
    python bench/run.py --entities 10000000  # the scale check (loading takes a while)

It creates a fresh database (on DATABASE_URL's server, or an embedded throwaway one), applies
bench/features.yaml, loads N entities into each view with `tectonite ingest`, starts
`tectonite serve` and a baseline app (a trivial Flask + orjson endpoint) under the same gunicorn
settings, and drives both over loopback with wrk (keep-alive connections, a Lua script rotating
over entity keys), interleaving repeats. Every figure is reported next to the baseline's as a
ratio. Results go to bench/results/<timestamp>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

SERVICE, REALTIME_SERVICE, WORKSPACE = "bench_service", "bench_service_realtime", "bench"
VIEWS = ("customer_activity", "customer_profile", "customer_history")
KEYS_IN_ROTATION = 20_000


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


# --------------------------------------------------------------------------- environment


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk from the system packages")
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
        return shutil.which("wrk") or "wrk"
    sys.exit(
        "bench needs wrk: install it (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)"
    )


@contextmanager
def fresh_database():
    """A new, empty database URL; dropped afterwards."""
    server_url = os.environ.get("DATABASE_URL")
    pg_dir = None
    if not server_url:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
        pg_dir = tempfile.mkdtemp(prefix="tectonite-bench-")
        server = pgserver.get_server(Path(pg_dir) / "pgdata", cleanup_mode="delete")
        server_url = server.get_uri()
    server_url = server_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"tectonite_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if pg_dir:
            server.cleanup()


def tectonite(env: dict[str, str], *args: str, capture: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env, cwd=ROOT, check=True, capture_output=capture, text=True,
    )  # fmt: skip
    return result.stdout if capture else ""


# --------------------------------------------------------------------------- data


def write_csvs(directory: Path, entities: int, rng: random.Random) -> dict[str, Path]:
    stamp = "2026-11-01T00:00:00Z"
    pages = ["home", "cart", "search", "product", "checkout"]
    countries = ["DE", "FR", "US", "JP", "BR"]
    files = {name: directory / f"{name}.csv" for name in VIEWS}
    with (
        files["customer_activity"].open("w") as activity,
        files["customer_profile"].open("w") as profile,
        files["customer_history"].open("w") as history,
    ):
        activity.write("customer_id,timestamp,clicks_1h,spend_1h,last_page\n")
        profile.write("customer_id,timestamp,age,country,score,vip\n")
        history.write("customer_id,timestamp,orders_30d,refunds_30d,recent_categories\n")
        for i in range(entities):
            key = f"c{i}"
            activity.write(f"{key},{stamp},{i % 97},{(i % 1000) * 1.25},{pages[i % 5]}\n")
            profile.write(
                f"{key},{stamp},{18 + i % 60},{countries[i % 5]},{rng.random():.6f},"
                f"{'true' if i % 10 == 0 else 'false'}\n"
            )
            history.write(f'{key},{stamp},{i % 30},{i % 3},"[""books"",""games""]"\n')
    return files


def bodies(path: Path, make, count: int) -> Path:  # type: ignore[no-untyped-def]
    with path.open("w") as out:
        for i in range(count):
            out.write(orjson.dumps(make(i)).decode() + "\n")
    return path


# --------------------------------------------------------------------------- servers


class Server:
    """A gunicorn master started as a child process; knows its URL and its process tree."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.url = ""
        ready = threading.Event()

        def pump() -> None:
            for line in self.process.stdout:  # type: ignore[union-attr]
                match = re.search(r"serving the Tecton API at (\S+)/api", line)
                if match and not ready.is_set():
                    self.url = match.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(120) or not self.url:
            self.process.kill()
            raise RuntimeError(f"{command} did not start")

    def tree(self) -> list[psutil.Process]:
        master = psutil.Process(self.process.pid)
        return [master, *master.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def worker_rss_mb(self) -> list[float]:
        return [round(p.memory_info().rss / 2**20, 1) for p in self.tree()[1:]]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def run_wrk(
    wrk: str, url: str, path: str, bodies_file: Path, connections: int, seconds: int,
    headers: dict[str, str],
) -> dict:  # fmt: skip
    command = [
        wrk, f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(BENCH / "wrk.lua"),
    ]  # fmt: skip
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url + path)
    out = subprocess.run(
        command, env={**os.environ, "BODIES_FILE": str(bodies_file)},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result = json.loads(out.split("WRK_JSON ", 1)[1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return result


def measure(wrk: str, server: Server, path: str, bodies_file: Path, connections: int,
            seconds: int, headers: dict[str, str]) -> dict:  # fmt: skip
    cpu_before = server.cpu_seconds()
    result = run_wrk(wrk, server.url, path, bodies_file, connections, seconds, headers)
    cpu = server.cpu_seconds() - cpu_before
    result["cpu_ms_per_request"] = 1000 * cpu / max(result["requests"], 1)
    return result


def median_of(runs: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_ms_per_request")
    summary = {k: statistics.median(r[k] for r in runs) for k in keys}
    summary["errors"] = sum(r["errors"] for r in runs)
    summary["runs"] = len(runs)
    return summary


# --------------------------------------------------------------------------- the benchmark


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per point")
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument(
        "--sustain", type=int, default=60, help="seconds of the RSS run (600 = the target)"
    )
    args = parser.parse_args()
    wrk = ensure_wrk()
    rng = random.Random(7)
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": {"nproc": os.cpu_count(), "loadavg_before": os.getloadavg()[0]},
        "entities": args.entities,
        "settings": {
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "default"),
            "TECTONITE_THREADS": os.environ.get("TECTONITE_THREADS", "default"),
        },
    }
    with fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        log(
            f"database ready; applying bench/features.yaml, loading {args.entities:,} entities per view"
        )
        tectonite(env, "workspace", "create", WORKSPACE)
        tectonite(
            env, "apply", "-f", str(BENCH / "features.yaml"), "--workspace", WORKSPACE, "--yes"
        )
        consumer = tectonite(env, "api-key", "create", "--description", "bench-read",
                             "--workspace", WORKSPACE).strip()  # fmt: skip
        editor = tectonite(env, "api-key", "create", "--description", "bench-write",
                           "--workspace", WORKSPACE, "--role", "editor").strip()  # fmt: skip
        files = write_csvs(work, args.entities, rng)
        load = {}
        for view, path in files.items():
            started = time.perf_counter()
            tectonite(env, "ingest", "--workspace", WORKSPACE, "--feature-view", view, str(path))
            elapsed = time.perf_counter() - started
            load[view] = {"rows": args.entities, "seconds": round(elapsed, 2),
                          "rows_per_s": round(args.entities / elapsed)}  # fmt: skip
            log(f"bulk ingest {view}: {load[view]['rows_per_s']:,} rows/s")
        results["bulk_ingest"] = load
        # Settle the database first: otherwise autovacuum analyses the freshly loaded table
        # (and writes dirty pages) in the middle of the first measurements.
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("VACUUM (ANALYZE) online_values"))
            conn.execute(text("CHECKPOINT"))
        engine.dispose()

        def key(_i: int) -> str:
            return f"c{rng.randrange(args.entities)}"

        single = bodies(work / "single.jsonl", lambda i: {"params": {
            "workspaceName": WORKSPACE, "featureServiceName": SERVICE,
            "joinKeyMap": {"customer_id": key(i)}}}, KEYS_IN_ROTATION)  # fmt: skip
        realtime = bodies(work / "realtime.jsonl", lambda i: {"params": {
            "workspaceName": WORKSPACE, "featureServiceName": REALTIME_SERVICE,
            "joinKeyMap": {"customer_id": key(i)}, "requestContextMap": {"amount": 120.5}}},
            KEYS_IN_ROTATION)  # fmt: skip
        batch = bodies(work / "batch.jsonl", lambda i: {"params": {
            "workspaceName": WORKSPACE, "featureServiceName": SERVICE,
            "requestData": [{"joinKeyMap": {"customer_id": key(i)}} for _ in range(10)]}},
            KEYS_IN_ROTATION // 10)  # fmt: skip
        now = datetime.now(UTC)
        # 100 records for 100 different entities: each one is a row to write.
        ingest = bodies(work / "ingest.jsonl", lambda i: {
            "workspace_name": WORKSPACE, "dry_run": False,
            "records": {"bench_events": [{"record": {
                "customer_id": key(i), "clicks_1h": j, "spend_1h": j * 1.5, "last_page": "cart",
                "timestamp": now.isoformat()}} for j in range(100)]}}, 500)  # fmt: skip

        server_env = {k: v for k, v in env.items() if k != "LOG_LEVEL"}
        tecton_server = Server(
            [sys.executable, "-m", "app.cli", "serve", "--port", "0"], server_env
        )
        baseline = Server([sys.executable, str(BENCH / "baseline.py"), "0"], server_env)
        read_headers = {"Authorization": f"Tecton-key {consumer}"}
        path = "/api/v1/feature-service/get-features"
        try:
            log("warming up")
            for server in (baseline, tecton_server):
                measure(wrk, server, path, single, 8, 3, read_headers)
            points = []
            for connections in [int(c) for c in args.connections.split(",")]:
                runs: dict[str, list[dict]] = {"baseline": [], "get-features": []}
                for _ in range(args.repeats):
                    runs["baseline"].append(
                        measure(
                            wrk, baseline, path, single, connections, args.duration, read_headers
                        )
                    )
                    runs["get-features"].append(
                        measure(
                            wrk,
                            tecton_server,
                            path,
                            single,
                            connections,
                            args.duration,
                            read_headers,
                        )
                    )
                base, ours = median_of(runs["baseline"]), median_of(runs["get-features"])
                points.append({"connections": connections, "baseline": base, "get-features": ours})
                log(f"c={connections}: baseline {base['rps']:.0f} req/s p99 {base['p99_ms']:.2f} ms; "
                    f"get-features {ours['rps']:.0f} req/s ({ours['rps'] / base['rps']:.2f}x) "
                    f"p99 {ours['p99_ms']:.2f} ms ({ours['p99_ms'] / base['p99_ms']:.2f}x)")  # fmt: skip
            results["points"] = points

            extra = {}
            for name, target, file, headers, per_request in (
                ("get-features realtime", path, realtime, read_headers, 1),
                ("get-features-batch (10 rows)", "/api/v1/feature-service/get-features-batch", batch, read_headers, 10),
                ("Stream Ingest API (100 records)", "/ingest", ingest, {"Authorization": f"Tecton-key {editor}"}, 100),
            ):  # fmt: skip
                runs_ = [measure(wrk, tecton_server, target, file, 8, args.duration, headers)
                         for _ in range(args.repeats)]  # fmt: skip
                summary = median_of(runs_)
                summary["items_per_s"] = summary["rps"] * per_request
                extra[name] = summary
                log(f"{name}: {summary['rps']:.0f} req/s, {summary['items_per_s']:.0f} items/s, "
                    f"p99 {summary['p99_ms']:.2f} ms, errors {summary['errors']}")  # fmt: skip
            results["c8_extra"] = extra

            rss_before = tecton_server.worker_rss_mb()
            log(f"sustained get-features load for {args.sustain}s (RSS before: {rss_before} MB)")
            sustained = measure(wrk, tecton_server, path, single, 8, args.sustain, read_headers)
            rss_after = tecton_server.worker_rss_mb()
            results["sustained"] = {"seconds": args.sustain, "rps": sustained["rps"],
                                    "errors": sustained["errors"], "worker_rss_mb_before": rss_before,
                                    "worker_rss_mb_after": rss_after}  # fmt: skip
            log(f"RSS after: {rss_after} MB")
        finally:
            tecton_server.stop()
            baseline.stop()
    write_results(results)


def write_results(results: dict) -> None:
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    lines = [
        f"Entities per view: {results['entities']:,}; machine: {results['machine']['nproc']} cores; "
        f"commit {results['git_sha']}; medians of {results['points'][0]['baseline']['runs']} "
        "interleaved runs.",
        "",
        "| Scenario | Conns | req/s | × baseline | p50 ms | p90 ms | p99 ms | p99 × baseline | server CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for point in results["points"]:
        base, ours = point["baseline"], point["get-features"]
        for name, row in (
            ("baseline (Flask + orjson echo)", base),
            ("get-features (3 views, 10 features)", ours),
        ):
            lines.append(
                f"| {name} | {point['connections']} | {row['rps']:,.0f} | {row['rps'] / base['rps']:.2f} | "
                f"{row['p50_ms']:.2f} | {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{row['p99_ms'] / base['p99_ms']:.2f} | {row['cpu_ms_per_request']:.2f} |"
            )
    base8 = next(p for p in results["points"] if p["connections"] == 8)
    single_rps = base8["get-features"]["rps"]
    for name, row in results["c8_extra"].items():
        lines.append(
            f"| {name} | 8 | {row['rps']:,.0f} | {row['rps'] / base8['baseline']['rps']:.2f} | "
            f"{row['p50_ms']:.2f} | {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['p99_ms'] / base8['baseline']['p99_ms']:.2f} | {row['cpu_ms_per_request']:.2f} |"
        )
    batch = results["c8_extra"]["get-features-batch (10 rows)"]["items_per_s"]
    ingest = results["c8_extra"]["Stream Ingest API (100 records)"]["items_per_s"]
    bulk = min(v["rows_per_s"] for v in results["bulk_ingest"].values())
    sustained = results["sustained"]
    lines += [
        "",
        f"- Batch: {batch:,.0f} feature rows/s = {batch / single_rps:.1f}× single-row requests/s (c=8).",
        f"- Bulk ingest (CLI, slowest view): {bulk:,} rows/s; Stream Ingest API: {ingest:,.0f} records/s.",
        f"- Worker RSS: {sustained['worker_rss_mb_before']} MB before, {sustained['worker_rss_mb_after']} MB "
        f"after {sustained['seconds']} s of load ({sustained['errors']} errors).",
    ]
    table = "\n".join(lines) + "\n"
    (out_dir / f"{stamp}.md").write_text(table)
    print("\n" + table)
    log(f"results written to bench/results/{stamp}.json and .md")


if __name__ == "__main__":
    main()

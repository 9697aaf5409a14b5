"""Tectonite's benchmark, in one command (after the quick start):

    python bench/run.py                      # 100,000 entities, ~12 minutes
    python bench/run.py --quick              # short runs, one repeat (~4 minutes)
    python bench/run.py --peers feast        # also Feast's feature server (PostgreSQL, SQLite)
    python bench/run.py --entities 10000000  # the scale check (loading takes a while)

It creates a fresh database (on DATABASE_URL's server, or an embedded throwaway one), applies
bench/features.yaml, loads N entities into each view with `tectonite ingest`, and right away
starts `tectonite serve` (its default server) to measure the first seconds after the load (cold
start). It then starts the fixed baseline (a trivial Flask + orjson endpoint on gunicorn gthread,
2 workers x 8 threads) and the same trivial endpoint on Tectonite's default server, and drives
all of them over loopback with wrk (keep-alive connections, a Lua script rotating over entity
keys), interleaving repeats. With --peers feast, Feast's Python feature server is installed in
its own virtualenv (bench/.peers/feast), loaded with the same entities and features in its
PostgreSQL and SQLite online stores, started as its docs advise for production, and measured
in the same interleaving. Results go to bench/results/<timestamp>.json and .md.
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
    """A server started as a child process; knows its URL and its process tree.

    Tectonite's servers announce their URL; a peer is given its URL and polled until it answers.
    """

    def __init__(self, command: list[str], env: dict[str, str], *, url: str = "",
                 cwd: Path = ROOT, health: str = "/health",
                 log_file: Path | None = None) -> None:  # fmt: skip
        # `log_file`: stderr (logs, the access log) goes there, as to a log file, instead of
        # through this process's pipe reader, whose per-line work shares the server's cores.
        stderr = log_file.open("ab") if log_file is not None else subprocess.STDOUT
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        if log_file is not None:
            stderr.close()  # type: ignore[union-attr]  # the child has its own descriptor
        self.url = url
        self.output: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            for line in self.process.stdout:  # type: ignore[union-attr]
                self.output.append(line)
                match = re.search(r"serving the Tecton API at (\S+)/api", line)
                if match and not ready.is_set():
                    self.url = match.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if url and wait_until_answers(url + health, self.process, 300):
            ready.set()
        if not ready.wait(120) or not self.url or self.process.poll() is not None:
            self.process.kill()
            raise RuntimeError(f"{command} did not start:\n{''.join(self.output[-30:])}")

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


def wait_until_answers(url: str, process: subprocess.Popen, seconds: float) -> bool:  # type: ignore[type-arg]
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback server
                return True
        except urllib.error.HTTPError:
            return True  # it answers
        except OSError:
            time.sleep(0.2)
    return False


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


# --------------------------------------------------------------------------- peers

FEAST_VERSION = "0.67.0"
FEAST_HEADERS = {"Content-Type": "application/json"}  # Feast rejects bodies without it
PEERS_DIR = BENCH / ".peers"


def ensure_feast() -> Path:
    """Feast in its own virtualenv under bench/.peers (never the project's environment)."""
    venv = PEERS_DIR / "feast"
    feast = venv / "bin" / "feast"
    if feast.exists():
        return venv
    log(f"installing feast[postgres]=={FEAST_VERSION} into {venv} (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"feast[postgres]=={FEAST_VERSION}"],
                   check=True)  # fmt: skip
    return venv


@contextmanager
def feast_servers(url: str, files: dict[str, Path], work: Path, env: dict[str, str]):
    """Feast's feature server on its PostgreSQL and on its SQLite online store, tuned as its
    docs advise for production (`feast serve --workers -1 --worker-connections 1000
    --registry_ttl_sec 60`, no access log)."""
    venv = ensure_feast()
    python, feast = str(venv / "bin" / "python"), str(venv / "bin" / "feast")
    pg_url = make_url(url)
    feast_db = f"{pg_url.database}_feast"
    admin = create_engine(pg_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{feast_db}"'))
    servers: dict[str, Server] = {}
    try:
        peer_env = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
        for store in ("postgres", "sqlite"):
            repo = work / f"feast_{store}"
            libpq = pg_url.set(drivername="postgresql", database=feast_db).render_as_string(
                hide_password=False
            )
            started = time.perf_counter()
            out = subprocess.run(
                [python, str(BENCH / "feast_peer.py"), str(repo), str(files["customer_activity"].parent),
                 store, libpq], env=peer_env, capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode:
                raise RuntimeError(f"feast {store} set-up failed:\n{out.stdout}\n{out.stderr}")
            log(f"{out.stdout.strip()} in {time.perf_counter() - started:.0f} s")
            port = free_port()
            servers[f"feast-{store}"] = Server(
                [feast, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "-1",
                 "--worker-connections", "1000", "--registry_ttl_sec", "60", "--no-access-log"],
                peer_env, url=f"http://127.0.0.1:{port}", cwd=repo,
            )  # fmt: skip
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{feast_db}" WITH (FORCE)'))
        admin.dispose()


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
    parser.add_argument("--quick", action="store_true",
                        help="5 s runs, 1 repeat, 10 s sustained: a rough picture in minutes")  # fmt: skip
    parser.add_argument("--peers", default="", help="comma-separated peers to measure: feast")
    parser.add_argument("--cold-start-only", action="store_true",
                        help="load, then measure only the first 5 s against the next 30 s")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeats, args.sustain = 5, 1, 10
    peers = {p for p in args.peers.split(",") if p}
    if peers - {"feast"}:
        sys.exit(f"unknown peers: {', '.join(sorted(peers - {'feast'}))} (known: feast)")
    wrk = ensure_wrk()
    rng = random.Random(7)
    sys.path.insert(0, str(ROOT))
    from app.config import Settings

    default_server = Settings.from_env().server
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": {"nproc": os.cpu_count(), "loadavg_before": os.getloadavg()[0]},
        "entities": args.entities,
        "duration": args.duration,
        "settings": {
            "server": default_server,
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
        feast_single = bodies(work / "feast.jsonl", lambda i: {
            "feature_service": SERVICE, "entities": {"customer_id": [key(i)]}},
            KEYS_IN_ROTATION)  # fmt: skip
        now = datetime.now(UTC)
        # 100 records for 100 different entities: each one is a row to write.
        ingest = bodies(work / "ingest.jsonl", lambda i: {
            "workspace_name": WORKSPACE, "dry_run": False,
            "records": {"bench_events": [{"record": {
                "customer_id": key(i), "clicks_1h": j, "spend_1h": j * 1.5, "last_page": "cart",
                "timestamp": now.isoformat()}} for j in range(100)]}}, 500)  # fmt: skip

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

        server_env = {k: v for k, v in env.items() if k != "LOG_LEVEL"}
        read_headers = {"Authorization": f"Tecton-key {consumer}"}
        path = "/api/v1/feature-service/get-features"
        # No cold start: right after the load (nothing settles the database first), the first
        # 5 s of reads against the next 30 s.
        tecton_server = Server(
            [sys.executable, "-m", "app.cli", "serve", "--port", "0"], server_env
        )
        servers = [tecton_server]
        try:
            first = measure(wrk, tecton_server, path, single, 8, 5, read_headers)
            steady = measure(wrk, tecton_server, path, single, 8, 30, read_headers)
            results["cold_start"] = {"first_5s": first, "next_30s": steady,
                                     "ratio": first["rps"] / steady["rps"]}  # fmt: skip
            log(f"cold start: first 5 s {first['rps']:.0f} req/s, next 30 s {steady['rps']:.0f} "
                f"req/s ({first['rps'] / steady['rps']:.2f}x)")  # fmt: skip
            if args.cold_start_only:
                return

            baseline = Server([sys.executable, str(BENCH / "baseline.py"), "0", "gunicorn"],
                              server_env)  # fmt: skip
            trivial = Server([sys.executable, str(BENCH / "baseline.py"), "0", default_server],
                             server_env)  # fmt: skip
            servers += [baseline, trivial]
            targets: dict[str, tuple[Server, str, Path, dict[str, str]]] = {
                "baseline": (baseline, path, single, read_headers),
                "trivial-own": (trivial, path, single, read_headers),
                "get-features": (tecton_server, path, single, read_headers),
            }
            with feast_servers(url, files, work, env) if peers else _no_peers() as peer_servers:
                servers += list(peer_servers.values())
                for name, peer in peer_servers.items():
                    targets[name] = (peer, "/get-online-features", feast_single, FEAST_HEADERS)
                log("warming up")
                for server, target_path, file, headers in targets.values():
                    measure(wrk, server, target_path, file, 8, 3, headers)
                points = []
                for connections in [int(c) for c in args.connections.split(",")]:
                    runs: dict[str, list[dict]] = {name: [] for name in targets}
                    for _ in range(args.repeats):
                        for name, (server, target_path, file, headers) in targets.items():
                            runs[name].append(measure(wrk, server, target_path, file,
                                                      connections, args.duration, headers))  # fmt: skip
                    point = {"connections": connections,
                             **{name: median_of(r) for name, r in runs.items()}}  # fmt: skip
                    points.append(point)
                    base, ours = point["baseline"], point["get-features"]
                    log(f"c={connections}: " + "; ".join(
                        f"{name} {point[name]['rps']:.0f} req/s p99 {point[name]['p99_ms']:.2f} ms"
                        for name in targets) + f"; get-features/baseline {ours['rps'] / base['rps']:.2f}x")  # fmt: skip
                results["points"] = points

            extra = {}
            for name, target, file, headers, per_request in (
                ("get-features realtime", path, realtime, read_headers, 1),
                ("get-features-batch (10 rows)", "/api/v1/feature-service/get-features-batch", batch, read_headers, 10),
                ("Stream Ingest API (100 records)", "/ingest", ingest, {"Authorization": f"Tecton-key {editor}"}, 100),
            ):  # fmt: skip
                runs_ = []
                for _ in range(args.repeats):  # interleaved with plain get-features
                    runs_.append(
                        measure(wrk, tecton_server, target, file, 8, args.duration, headers)
                    )
                    if name == "get-features realtime":
                        extra.setdefault("_plain", []).append(
                            measure(
                                wrk, tecton_server, path, single, 8, args.duration, read_headers
                            )
                        )
                summary = median_of(runs_)
                summary["items_per_s"] = summary["rps"] * per_request
                extra[name] = summary
                log(f"{name}: {summary['rps']:.0f} req/s, {summary['items_per_s']:.0f} items/s, "
                    f"p99 {summary['p99_ms']:.2f} ms, errors {summary['errors']}")  # fmt: skip
            extra["get-features (beside realtime)"] = median_of(extra.pop("_plain"))
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
            for server in servers:
                server.stop()
    results["machine"]["loadavg_after"] = os.getloadavg()[0]
    write_results(results)


@contextmanager
def _no_peers():
    yield {}


LABELS = {
    "baseline": "fixed baseline: trivial Flask + orjson, gunicorn gthread 2x8",
    "trivial-own": "trivial Flask + orjson on Tectonite's server",
    "get-features": "Tectonite get-features (3 views, 10 features)",
    "feast-postgres": "Feast feature server, PostgreSQL online store",
    "feast-sqlite": "Feast feature server, SQLite online store",
}


def write_results(results: dict) -> None:
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    machine = results["machine"]
    lines = [
        f"Entities per view: {results['entities']:,}; server: {results['settings']['server']} "
        f"(WEB_CONCURRENCY {results['settings']['WEB_CONCURRENCY']}, TECTONITE_THREADS "
        f"{results['settings']['TECTONITE_THREADS']}); machine: {machine['nproc']} cores, load "
        f"average {machine['loadavg_before']:.1f} before and {machine.get('loadavg_after', 0):.1f} "
        f"after; commit {results['git_sha']}; {results['duration']} s runs, medians of "
        f"{results['points'][0]['baseline']['runs']} interleaved runs.",
        "",
        "| Scenario | Conns | req/s | × fixed baseline | get-features × this | p50 ms | p99 ms | p99 × baseline | server CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for point in results["points"]:
        base, ours = point["baseline"], point["get-features"]
        for name, label in LABELS.items():
            if name not in point:
                continue
            row = point[name]
            lines.append(
                f"| {label} | {point['connections']} | {row['rps']:,.0f} | {row['rps'] / base['rps']:.2f} | "
                f"{ours['rps'] / row['rps']:.2f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{row['p99_ms'] / base['p99_ms']:.2f} | {row['cpu_ms_per_request']:.2f} |"
            )
    base8 = next(p for p in results["points"] if p["connections"] == 8)
    extra = results["c8_extra"]
    for name, row in extra.items():
        lines.append(
            f"| {name} | 8 | {row['rps']:,.0f} | {row['rps'] / base8['baseline']['rps']:.2f} | "
            f"{base8['get-features']['rps'] / row['rps']:.2f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['p99_ms'] / base8['baseline']['p99_ms']:.2f} | {row['cpu_ms_per_request']:.2f} |"
        )
    single_rps = base8["get-features"]["rps"]
    plain = extra["get-features (beside realtime)"]["rps"]
    realtime = extra["get-features realtime"]["rps"]
    batch = extra["get-features-batch (10 rows)"]["items_per_s"]
    ingest = extra["Stream Ingest API (100 records)"]["items_per_s"]
    bulk = min(v["rows_per_s"] for v in results["bulk_ingest"].values())
    cold = results["cold_start"]
    sustained = results["sustained"]
    c1 = next((p for p in results["points"] if p["connections"] == 1), None)

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    ratio_base = single_rps / base8["baseline"]["rps"]
    ratio_own = single_rps / base8["trivial-own"]["rps"]
    p99_ratio = base8["get-features"]["p99_ms"] / base8["baseline"]["p99_ms"]
    lines += [
        "",
        "| Target (issue 10) | Measured | |",
        "|---|---|---|",
        f"| get-features ≥ 0.9× fixed baseline at 8 connections | {ratio_base:.2f}× | {verdict(ratio_base >= 0.9)} |",
        f"| get-features ≥ 0.5× trivial endpoint on Tectonite's server at 8 | {ratio_own:.2f}× | {verdict(ratio_own >= 0.5)} |",
        f"| p99 ≤ 1.5× fixed baseline's at 8 | {p99_ratio:.2f}× | {verdict(p99_ratio <= 1.5)} |",
    ]
    if c1:
        lines.append(
            f"| c=1 p50 ≤ 0.8 ms | {c1['get-features']['p50_ms']:.2f} ms | {verdict(c1['get-features']['p50_ms'] <= 0.8)} |"
        )
    lines += [
        f"| realtime ≥ 0.85× plain get-features (c=8, interleaved) | {realtime / plain:.2f}× | {verdict(realtime / plain >= 0.85)} |",
        f"| batch-10 feature rows/s ≥ 6× single req/s (c=8, interleaved) | {batch / plain:.1f}× ({batch:,.0f} rows/s) | {verdict(batch / plain >= 6)} |",
        f"| first 5 s after the load within 10 % of the next 30 s | {cold['ratio']:.2f}× ({cold['first_5s']['rps']:,.0f} vs {cold['next_30s']['rps']:,.0f} req/s) | {verdict(abs(1 - cold['ratio']) <= 0.10)} |",
    ]
    for peer, target in (("feast-postgres", 2.5), ("feast-sqlite", 1.8)):
        ratios = [(p["connections"], p["get-features"]["rps"] / p[peer]["rps"])
                  for p in results["points"] if peer in p]  # fmt: skip
        if ratios:
            shown = ", ".join(f"c={c}: {r:.2f}×" for c, r in ratios)
            lines.append(
                f"| ≥ {target}× {LABELS[peer]} | {shown} | {verdict(min(r for _, r in ratios) >= target)} |"
            )
    lines += [
        "",
        f"- Bulk ingest (CLI, slowest view, {results['entities']:,} rows): {bulk:,} rows/s; Stream Ingest API: {ingest:,.0f} records/s.",
        f"- Worker RSS: {sustained['worker_rss_mb_before']} MB before, {sustained['worker_rss_mb_after']} MB "
        f"after {sustained['seconds']} s of load ({sustained['errors']} errors).",
    ]
    table = "\n".join(lines) + "\n"
    (out_dir / f"{stamp}.md").write_text(table)
    print("\n" + table)
    log(f"results written to bench/results/{stamp}.json and .md")


if __name__ == "__main__":
    main()

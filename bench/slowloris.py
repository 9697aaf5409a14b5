"""Slow clients against normal ones: latency of normal requests while 200 connections never
finish their request (slowloris), on each server `tectonite serve` runs.

    python bench/slowloris.py                    # 200 slow connections, 15 s per case
    python bench/slowloris.py --slow 500 --duration 30
    python bench/slowloris.py --server granian --kind "endless body"

For each server (granian, gunicorn) and each kind of slow client (none: the baseline; a
single byte; a head that never ends; a body that never ends), it starts `tectonite serve`
(2 workers x 8 threads, the default TECTONITE_READ_TIMEOUT) on a fresh database, keeps the
slow connections open for the whole run (one whose connection the server closes is reopened
at once, as an attacker would), and meanwhile drives 4 keep-alive clients calling
`GET /readyz` (one database round trip) back to back. Prints a Markdown table of the normal
requests' latency and errors.
"""

from __future__ import annotations

import argparse
import http.client
import os
import selectors
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: database, servers

SLOW = {
    "none": None,
    "one byte": b"G",
    "endless head": b"POST /ingest HTTP/1.1\r\nHost: b\r\nContent-Le",
    "endless body": b"POST /ingest HTTP/1.1\r\nHost: b\r\nContent-Length: 100\r\n\r\n{",
}


def slow_clients(url: str, count: int, request: bytes, stop: threading.Event) -> list[int]:
    """Hold `count` connections that sent `request` and nothing more; reopen closed ones."""
    host, port = url.removeprefix("http://").split(":")
    selector = selectors.DefaultSelector()
    reopened = [0]

    def open_one() -> None:
        sock = socket.create_connection((host, int(port)))
        sock.sendall(request)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    for _ in range(count):
        open_one()

    def keep() -> None:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    reopened[0] += 1
                    open_one()
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]

    threading.Thread(target=keep, daemon=True).start()
    return reopened


def normal_clients(url: str, clients: int, seconds: float) -> tuple[list[float], int]:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                conn.request("GET", "/readyz")
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            mine.append(time.perf_counter() - began)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--server", choices=["granian", "gunicorn"], action="append")
    parser.add_argument("--kind", choices=list(SLOW), action="append")
    args = parser.parse_args()
    rows = []
    with run.fresh_database() as url:
        base_env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning",
                    "PYTHONUNBUFFERED": "1", "TECTONITE_ACCESS_LOG": "off"}  # fmt: skip
        for server_name in args.server or ("granian", "gunicorn"):
            for kind in args.kind or list(SLOW):
                request = SLOW[kind]
                env = {**base_env, "TECTONITE_SERVER": server_name}
                server = run.Server([sys.executable, "-m", "app.cli", "serve", "--port", "0"], env)
                stop = threading.Event()
                try:
                    reopened = (
                        slow_clients(server.url, args.slow, request, stop) if request else [0]
                    )
                    latencies, errors = normal_clients(server.url, 4, args.duration)
                finally:
                    stop.set()
                    server.stop()
                latencies.sort()
                p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
                rows.append((server_name, kind, len(latencies), errors,
                             statistics.median(latencies) * 1000, p99 * 1000,
                             latencies[-1] * 1000, reopened[0]))  # fmt: skip
                run.log(f"{server_name} / {kind}: p99 {p99 * 1000:.1f} ms, {errors} errors")
    print(f"\nloadavg {os.getloadavg()[0]:.1f}; {args.slow} slow connections, 4 normal clients, "
          f"{args.duration:g} s per case\n")  # fmt: skip
    print("| server | slow clients | normal requests | errors | p50 ms | p99 ms | max ms | "
          "slow connections closed by the server |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, kind, count, errors, p50, p99, worst, reopened in rows:
        print(f"| {name} | {kind} | {count} | {errors} | {p50:.1f} | {p99:.1f} | {worst:.0f} | "
              f"{reopened} |")  # fmt: skip


if __name__ == "__main__":
    main()

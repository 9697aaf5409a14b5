"""Prometheus metrics: what the server counts, and `GET /metrics` in the text exposition format.

Every `tectonite serve` worker is a separate process, so values live in prometheus-client's
multiprocess mode: each process writes its own memory-mapped files under one directory
(`prepare_multiprocess_dir`, called by `serve` before any worker starts) and a scrape of any
worker merges them all. Without that directory (tests in-process, an embedding app) each app
keeps its values in its own registry.

Labels are bounded by construction: `endpoint` is the URL rule (an unknown path is one value),
`workspace` is set only for workspaces a view found to exist, `feature_view` only for views
defined in one, `status` is an HTTP status or a feature status. No API key, join-key value or
request body ever reaches a label.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import threading
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, has_app_context
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.pool import Pool

from app.changes import DEFINITIONS_TOPIC, HEARTBEAT_TOPIC, ChangeFeed
from app.db import DATABASE
from app.extensions import Slot

if TYPE_CHECKING:
    from app.serving.assembly import Served
    from app.serving.model import ResolvedService

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the name prometheus-client itself reads
NO_WORKSPACE = ""  # label value when the request named no existing workspace
UNMATCHED = "unmatched"  # endpoint label of every path no route matches

# Serving answers in about a millisecond; the top buckets cover the 2 s deadline.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2)

# Gauges holding a Unix time whose age the scrape reports as `<name without _timestamp>_age`.
_AGE_OF = {
    "tectonite_definitions_refreshed_timestamp_seconds": (
        "tectonite_definitions_age_seconds",
        "Seconds since the stalest server process last refreshed its feature definitions "
        "(start-up or a definitions change notification).",
    ),
    "tectonite_change_feed_heard_timestamp_seconds": (
        "tectonite_change_feed_age_seconds",
        "Seconds since the stalest server process last heard from the change feed "
        "(PostgreSQL LISTEN); grows when a listener is stuck or disconnected.",
    ),
}


def prepare_multiprocess_dir(configured: Path | None) -> Path:
    """An empty directory for this server's metric files, exported to its worker processes.

    `configured` (PROMETHEUS_MULTIPROC_DIR) is emptied of a previous run's files; otherwise a
    fresh temporary directory is made, so two servers never mix their counts. Call it before
    the HTTP server starts its workers (any server: they inherit the environment).
    """
    if configured is not None:
        configured.mkdir(parents=True, exist_ok=True)
        for stale in configured.glob("*.db"):
            stale.unlink()
        directory = configured
    else:
        import atexit
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="tectonite-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


FLUSH_INTERVAL_SECONDS = 1.0


class PendingTallies:
    """Per-request counts and observations, kept in plain dicts until `flush` hands them to
    prometheus-client.

    In multiprocess mode every increment of a prometheus-client value takes a lock, checks the
    process id and writes the memory-mapped file; a get-features request made about seven of
    them. Here a request pays one lock and a few dict updates, and the values reach the files
    once a second (`start_flushing`) and before every scrape of this process. The cost is that
    a scrape may miss up to a second of another worker's requests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        # histogram child -> per-bucket counts, then the sum of the observed values
        self._observations: dict[Any, list[float]] = {}
        self._flusher_pid: int | None = None

    def count(self, child: Any, amount: float = 1.0) -> None:
        with self._lock:
            self._counts[child] = self._counts.get(child, 0.0) + amount

    def observe(self, child: Any, value: float) -> None:
        bounds = child._upper_bounds  # prometheus-client's own bucket bounds (+Inf last)
        index = bisect_left(bounds, value)  # the first bucket whose bound is >= value
        with self._lock:
            slots = self._observations.get(child)
            if slots is None:
                slots = self._observations[child] = [0.0] * (len(bounds) + 1)
            slots[index] += 1
            slots[-1] += value

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            observations, self._observations = self._observations, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, slots in observations.items():
            child._sum.inc(slots[-1])
            for index, hits in enumerate(slots[:-1]):
                if hits:
                    child._buckets[index].inc(hits)

    def start_flushing(self) -> None:
        """A daemon thread in this process that flushes every second (started once per
        process: a forked worker starts its own)."""
        pid = os.getpid()
        if self._flusher_pid == pid:
            return
        self._flusher_pid = pid

        def run() -> None:
            while True:
                time.sleep(FLUSH_INTERVAL_SECONDS)
                self.flush()

        threading.Thread(target=run, name="tectonite-metrics", daemon=True).start()


class Metrics:
    """The metric families of one app, and the cheap per-request recording calls."""

    def __init__(self, multiprocess_dir: Path | None) -> None:
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None:
            os.environ.setdefault(MULTIPROC_ENV, str(multiprocess_dir))
            if not getattr(values.ValueClass, "_multiprocess", False):
                # prometheus-client picked its value class when first imported, which may have
                # been before `serve` exported the directory.
                values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "tectonite_requests",
            "HTTP requests answered, by endpoint (URL rule), workspace and HTTP status.",
            ["endpoint", "workspace", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "tectonite_request_duration_seconds",
            "Time from routing to the response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_read_seconds = Histogram(
            "tectonite_store_read_duration_seconds",
            "Time of the online-store read of a serving request (one statement).",
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.feature_statuses = Counter(
            "tectonite_feature_statuses",
            "Feature values served, by workspace and status (PRESENT, MISSING_DATA, CACHED_*).",
            ["workspace", "status"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "tectonite_feature_cache_lookups",
            "Feature-service cache lookups (one per view and row), by workspace and result.",
            ["workspace", "result"],
            registry=registry,
        )
        self.ingest_records = Counter(
            "tectonite_ingest_records",
            "Stream Ingest API records, by workspace and outcome (written, rejected, dry_run).",
            ["workspace", "outcome"],
            registry=registry,
        )
        self.ingest_events = Counter(
            "tectonite_ingest_events",
            "Stream Ingest API events for aggregate feature views, by workspace, view and "
            "outcome (written, rejected, dry_run).",
            ["workspace", "feature_view", "outcome"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "tectonite_auth_failures",
            "Requests answered 401: missing, unknown, expired or revoked API key.",
            registry=registry,
        )
        self.auth_throttled = Counter(
            "tectonite_auth_throttled",
            "Requests refused 429 because their client failed authentication too often.",
            registry=registry,
        )
        self.transform_errors = Counter(
            "tectonite_realtime_transform_errors",
            "Realtime transforms that raised or returned a wrong value (answered 400).",
            ["workspace"],
            registry=registry,
        )
        self.pool_in_use = Gauge(
            "tectonite_db_pool_connections_in_use",
            "Database pool connections checked out, summed over live server processes.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.definitions_refreshed = Gauge(
            "tectonite_definitions_refreshed_timestamp_seconds",
            "Unix time the stalest live process last refreshed its feature definitions.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.change_feed_heard = Gauge(
            "tectonite_change_feed_heard_timestamp_seconds",
            "Unix time the stalest live process last heard from the change feed.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        # Label children, looked up once: `.labels()` costs microseconds on the hot path.
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._status_children: dict[tuple[str, str], Any] = {}
        self._cache_children: dict[tuple[str, str], Any] = {}
        self.pending = PendingTallies()
        self.definitions_refreshed.set(time.time())

    def listen_to(self, feed: ChangeFeed) -> None:
        """Track the definitions' and the change feed's freshness from the app's feed."""
        feed.subscribe(DEFINITIONS_TOPIC, self._definitions_changed)
        feed.subscribe(HEARTBEAT_TOPIC, self._change_feed_heard)
        if feed.listener is not None:
            self.change_feed_heard.set(time.time())  # its age counts from start-up

    def _definitions_changed(self, _workspace: str) -> None:
        self.definitions_refreshed.set(time.time())

    def _change_feed_heard(self, _detail: str) -> None:
        self.change_feed_heard.set(time.time())

    # ------------------------------------------------------------------ recording

    def observe_request(self, endpoint: str, workspace: str, status: int, seconds: float) -> None:
        key = (endpoint, workspace, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(
                endpoint, workspace, str(status)
            )
        latency = self._latency_children.get(endpoint)
        if latency is None:
            latency = self._latency_children[endpoint] = self.request_seconds.labels(endpoint)
        pending = self.pending
        if self.multiprocess_dir is not None:
            pending.start_flushing()
        pending.count(child)
        pending.observe(latency, seconds)

    def observe_served(self, resolved: ResolvedService, served: Served) -> None:
        """Statuses, cache lookups and the store read of one serving request."""
        workspace = resolved.workspace
        pending = self.pending
        if served.store_seconds:
            pending.observe(self.store_read_seconds, served.store_seconds)
        tally: Tally[str] = Tally()
        for row in served.rows:
            tally.update(row.statuses)
        for status, count in tally.items():
            pending.count(self._status_child(workspace, status), count)
        if served.cache_hits:
            pending.count(self._cache_child(workspace, "hit"), served.cache_hits)
        if served.cache_misses:
            pending.count(self._cache_child(workspace, "miss"), served.cache_misses)

    def _status_child(self, workspace: str, status: str) -> Any:
        child = self._status_children.get((workspace, status))
        if child is None:
            child = self._status_children[(workspace, status)] = self.feature_statuses.labels(
                workspace, status
            )
        return child

    def _cache_child(self, workspace: str, result: str) -> Any:
        child = self._cache_children.get((workspace, result))
        if child is None:
            child = self._cache_children[(workspace, result)] = self.cache_lookups.labels(
                workspace, result
            )
        return child

    # ------------------------------------------------------------------ exposition

    def exposition(self) -> bytes:
        """Every process's metrics, merged, in the Prometheus text format (this process's
        pending tallies first; other processes' reach their files within a second)."""
        self.pending.flush()
        if self.multiprocess_dir is None:
            return generate_latest(_WithAges(self.registry.collect))
        _forget_dead_processes(self.multiprocess_dir)
        collector = MultiProcessCollector(None, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(_WithAges(collector.collect))


class _WithAges(Collector):
    """A collector's families, plus an `_age_seconds` gauge for each tracked timestamp."""

    def __init__(self, collect: Any) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        now = time.time()
        for family in self._collect():
            yield family
            age = _AGE_OF.get(family.name)
            if age is None or not family.samples:
                continue
            oldest = min(sample.value for sample in family.samples)
            if oldest > 0:  # 0: never set (no process listens for changes)
                yield GaugeMetricFamily(age[0], age[1], value=max(0.0, now - oldest))


_LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db$")


def _forget_dead_processes(directory: Path) -> None:
    """Drop the live-gauge files of processes that exited (whatever server ran them)."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        match = _LIVE_FILE.search(path)
        if match is None:
            continue
        pid = int(match.group(1))
        if not _alive(pid):
            mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _checked_out(*_args: Any) -> None:
    _pool_changed(0)


def _checked_in(*_args: Any) -> None:
    _pool_changed(-1)  # SQLAlchemy fires `checkin` before the connection is back in the pool


def _pool_changed(adjust: int) -> None:
    """A pool connection was checked out or in: the current app's gauge follows its pool.

    One listener on the `Pool` class (registered once) rather than one per app: tests build
    hundreds of apps on one engine. Checkouts outside an app (the CLI) are not counted.
    """
    if not has_app_context():
        return
    observed = find_metrics()
    checked_out = getattr(DATABASE.get().engine.pool, "checkedout", None)  # a QueuePool's
    if observed is not None and checked_out is not None:
        observed.pool_in_use.set(max(0, checked_out() + adjust))


def _watch_pools() -> None:
    for name, listener in (("checkout", _checked_out), ("checkin", _checked_in)):
        if not event.contains(Pool, name, listener):
            event.listen(Pool, name, listener)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    """Prometheus scrape target; unauthenticated (turn it off with TECTONITE_METRICS=off)."""
    return Response(METRICS.get().exposition(), content_type=CONTENT_TYPE_LATEST)


METRICS = Slot[Metrics]("tectonite.metrics")


def find_metrics(app: Flask | None = None) -> Metrics | None:
    """The app's metrics; None with TECTONITE_METRICS=off."""
    found: Metrics | None = (app or current_app).extensions.get(METRICS.key)
    return found


def init_app(app: Flask, feed: ChangeFeed, multiprocess_dir: Path | None) -> Metrics:
    """The app's metrics (fed by its change feed and its database pool) and `GET /metrics`."""
    metrics = METRICS.register(app, Metrics(multiprocess_dir))
    metrics.listen_to(feed)
    _watch_pools()
    app.register_blueprint(bp)
    return metrics

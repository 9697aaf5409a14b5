"""Serving reads from streaming read replicas, with the primary as the fallback.

A `LagMonitor` thread (one per process, started on the first read) measures how far each
replica is behind the primary from WAL positions, a few times a second: it samples the
primary's `pg_current_wal_lsn()` with the time, and each replica's `pg_last_wal_replay_lsn()`.
A replica that has replayed the primary's position of time t holds every commit made before t,
so its lag is at most now - t (0 when it has replayed the newest sample). This stays true when
the primary is idle (no new WAL: nothing to miss), which `pg_last_xact_replay_timestamp()`
alone cannot tell apart from a stalled replica. A replica whose lag exceeds the limit, that
cannot be reached, or that is no longer in recovery is skipped until a later check finds it
well; a read that fails on a replica is answered by the primary at once.

The request thread only looks at the last measurements: the hot path stays one round trip.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Any

import psycopg

from app.store.connection import ThreadConnections

logger = logging.getLogger("tectonite.store.replicas")

QUERY_CANCELED = "57014"  # the read's own deadline: answered 504, never retried elsewhere
APPLICATION_NAME = "tectonite-replica-monitor"

_PRIMARY_POSITION = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
# NULL when the server is not (or no longer) a standby.
_REPLAYED_POSITION = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() - '0/0'::pg_lsn END"
)


def check_interval(max_lag_s: float) -> float:
    """How often lag is measured: a fifth of the limit, between 50 and 250 ms."""
    return min(0.25, max(0.05, max_lag_s / 5))


class LagMonitor:
    """The replicas' last measured lag (seconds; None: failing or unknown), kept fresh by a
    background thread."""

    def __init__(self, primary: str, replicas: tuple[str, ...], *, max_lag_s: float) -> None:
        self.primary = primary
        self.replicas = replicas
        self.max_lag_s = max_lag_s
        self.interval = check_interval(max_lag_s)
        self.lags: list[float | None] = [None] * len(replicas)
        # (monotonic time, primary WAL position) of recent checks, oldest first.
        self._samples: deque[tuple[float, int]] = deque()
        self._window_s = 2 * max_lag_s + 1
        self._connections: dict[str, psycopg.Connection[Any]] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._turn = itertools.count()

    # ---------------------------------------------------------------- request side

    def choose(self) -> int | None:
        """A replica within the lag limit (round robin), or None for the primary."""
        if self._thread is None:
            self._start()
        healthy = [
            i for i, lag in enumerate(self.lags) if lag is not None and lag <= self.max_lag_s
        ]
        if not healthy:
            return None
        return healthy[next(self._turn) % len(healthy)]

    def mark_failed(self, index: int) -> None:
        """A read on replica `index` failed: skip it until a check finds it well again."""
        self.lags[index] = None

    # ---------------------------------------------------------------- monitor side

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tectonite-replica-monitor", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            self.check()
            self._stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def check(self) -> None:
        """Measure every replica once."""
        now = time.monotonic()
        position = self._position(self.primary, _PRIMARY_POSITION)
        if position is None:  # the primary cannot be asked: no replica can be vouched for
            self.lags = [None] * len(self.replicas)
            return
        self._samples.append((now, position))
        while self._samples and self._samples[0][0] < now - self._window_s:
            self._samples.popleft()
        lags: list[float | None] = []
        for replica in self.replicas:
            replayed = self._position(replica, _REPLAYED_POSITION)
            lags.append(None if replayed is None else self._lag(replayed, time.monotonic()))
        self.lags = lags

    def _lag(self, replayed: int, now: float) -> float:
        """Seconds since the newest sampled primary position the replica has replayed."""
        for sampled_at, position in reversed(self._samples):
            if position <= replayed:
                newest = self._samples[-1][0]
                return 0.0 if sampled_at == newest else now - sampled_at
        return now - self._samples[0][0] + self.interval  # behind everything we remember

    def _position(self, conninfo: str, query: str) -> int | None:
        try:
            connection = self._connections.get(conninfo)
            if connection is None or connection.closed:
                connection = psycopg.connect(
                    conninfo,
                    autocommit=True,
                    connect_timeout=2,
                    application_name=APPLICATION_NAME,
                    prepare_threshold=None,
                )
                self._connections[conninfo] = connection
            row = connection.execute(query).fetchone()
        except psycopg.Error as exc:
            logger.debug("replica monitor: %s failed (%s)", _host(conninfo), type(exc).__name__)
            broken = self._connections.pop(conninfo, None)
            if broken is not None:
                broken.close()
            return None
        return None if row is None or row[0] is None else int(row[0])

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def _host(conninfo: str) -> str:
    """The URL without credentials, for logs."""
    return conninfo.rsplit("@", 1)[-1]


class ReplicaRouter:
    """A `CursorSource` that reads on a healthy replica, else on the primary."""

    def __init__(
        self,
        primary: ThreadConnections,
        replicas: list[ThreadConnections],
        monitor: LagMonitor,
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.monitor = monitor

    def cursor(self) -> psycopg.Cursor[Any]:
        """The primary's cursor for this thread (replica cursors are reached through `fetch`)."""
        return self.primary.cursor()

    def fetch(self, query: str, params: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
        index = self.monitor.choose()
        if index is not None:
            try:
                return self.replicas[index].fetch(query, params)
            except psycopg.Error as exc:
                if exc.sqlstate == QUERY_CANCELED:
                    raise
                # Unreachable, restarted, promoted, or a read cancelled by a recovery conflict:
                # the primary answers this one, and the replica waits for its next check.
                logger.warning(
                    "replica %s failed a read (%s); using the primary",
                    _host(self.replicas[index].conninfo),
                    type(exc).__name__,
                )
                self.replicas[index].discard()
                self.monitor.mark_failed(index)
        return self.primary.fetch(query, params)

    def discard(self) -> None:
        self.primary.discard()

    def close(self) -> None:
        self.monitor.close()
        for replica in self.replicas:
            replica.close()
        self.primary.close()

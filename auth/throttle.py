"""Slowing down clients that keep failing authentication, across every process and instance.

Failures are counted in PostgreSQL (`auth_failures`, an UNLOGGED table: one row per client and
fixed window of FAILED_ATTEMPTS_WINDOW_SECONDS), so every worker and every instance on the
database sees the same count and the limit is exact: the first FAILED_ATTEMPTS_LIMIT failures
of a client in a window are answered 401, the rest 429 with Retry-After. Each failure costs one
upsert until the client is throttled; from then on this process answers 429 from memory until
the window ends. Valid keys are always verified first and pass, so a throttled address still
serves its good keys. With 256-bit secrets guessing is hopeless anyway; the limit caps the cost
and log noise of floods of bad keys.

Memory is bounded: the in-process list holds only throttled clients (at most `max_clients`);
when it is full, new throttled clients are still refused through the database count, and no
flood of other addresses can evict a throttled one. When the database cannot be reached, the
in-process `FailureThrottle` counts instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from auth.store import delete_old_auth_failures, record_auth_failure

logger = logging.getLogger("tectonite.auth")

FAILED_ATTEMPTS_LIMIT = 100
FAILED_ATTEMPTS_WINDOW_SECONDS = 10.0
MAX_TRACKED_CLIENTS = 10_000

Connect = Callable[[], AbstractContextManager[Connection]]


class FailureThrottle:
    """The in-process fallback: a sliding window of recent failures per client address."""

    def __init__(
        self,
        *,
        limit: int = FAILED_ATTEMPTS_LIMIT,
        window_seconds: float = FAILED_ATTEMPTS_WINDOW_SECONDS,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def record_failure(self, client: str) -> int | None:
        """Count one failure; the Retry-After seconds if `client` is now over the limit."""
        now = self.clock()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                if len(self._failures) >= self.max_clients:
                    self._forget_idle(now)
                if len(self._failures) >= self.max_clients:
                    return None  # full of active clients: never evict one to track another
                failures = self._failures[client] = deque(maxlen=self.limit)
            while failures and failures[0] <= now - self.window_seconds:
                failures.popleft()
            over_limit = len(failures) >= self.limit
            retry_after = (
                max(1, math.ceil(failures[0] + self.window_seconds - now)) if over_limit else None
            )
            failures.append(now)
            return retry_after

    def _forget_idle(self, now: float) -> None:
        idle = [c for c, f in self._failures.items() if not f or f[-1] <= now - self.window_seconds]
        for client in idle:
            del self._failures[client]


class SharedFailureThrottle:
    """Counts failures in PostgreSQL, shared by every process; see the module docstring."""

    def __init__(
        self,
        *,
        connect: Connect,
        limit: int = FAILED_ATTEMPTS_LIMIT,
        window_seconds: float = FAILED_ATTEMPTS_WINDOW_SECONDS,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect = connect
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        self.fallback = FailureThrottle(
            limit=limit, window_seconds=window_seconds, max_clients=max_clients, clock=clock
        )
        self._throttled: dict[str, float] = {}  # client → monotonic end of its window
        self._lock = threading.Lock()
        self._swept_at = -math.inf

    def record_failure(self, client: str) -> int | None:
        """Count one failure; the Retry-After seconds if `client` is now over the limit."""
        now = self.clock()
        until = self._throttled.get(client)
        if until is not None and until > now:
            return max(1, math.ceil(until - now))
        try:
            with self.connect() as connection:
                failures, seconds_left = record_auth_failure(
                    connection, client, self.window_seconds
                )
                if now - self._swept_at >= self.window_seconds:
                    self._swept_at = now
                    delete_old_auth_failures(connection, self.window_seconds)
        except SQLAlchemyError as exc:
            logger.warning("failure throttle falls back to this process (%s)", type(exc).__name__)
            return self.fallback.record_failure(client)
        if failures <= self.limit:
            return None
        self._remember(client, now + seconds_left)
        return max(1, math.ceil(seconds_left))

    def _remember(self, client: str, until: float) -> None:
        with self._lock:
            if len(self._throttled) >= self.max_clients:
                now = self.clock()
                for expired in [c for c, end in self._throttled.items() if end <= now]:
                    del self._throttled[expired]
            if len(self._throttled) < self.max_clients:
                self._throttled[client] = until

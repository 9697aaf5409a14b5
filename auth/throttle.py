"""Slowing down clients that keep failing authentication.

Per process, each client address has a sliding window of its recent failures. Once it holds
FAILED_ATTEMPTS_LIMIT failures younger than FAILED_ATTEMPTS_WINDOW_SECONDS, further failures
are answered 429 with Retry-After instead of 401. Valid keys are always verified first and
pass, so a throttled address still serves its good keys. With 256-bit secrets guessing is
hopeless anyway; the limit caps the cost and log noise of floods of bad keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

FAILED_ATTEMPTS_LIMIT = 100
FAILED_ATTEMPTS_WINDOW_SECONDS = 10.0
MAX_TRACKED_CLIENTS = 10_000


class FailureThrottle:
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
        if len(self._failures) >= self.max_clients:
            self._failures.clear()

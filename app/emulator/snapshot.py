"""Per-process copies of the emulator's small shared state (clock, fault rules).

Each copy is reloaded from PostgreSQL after a change notice on the change feed (topic
"emulator", detail "clock" or "faults"; "" means both), so a change reaches every process and
instance within the feed's latency. While the feed is disconnected, copies older than half a
second are reloaded instead, which still keeps every process within a second of the truth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from app.changes import ChangeFeed

logger = logging.getLogger("tectonite.emulator")

TOPIC = "emulator"
UNTRUSTED_MAX_AGE_SECONDS = 0.5

T = TypeVar("T")


class Snapshot(Generic[T]):
    """A value loaded by `load`, kept until `feed` says `detail` (or everything) changed."""

    def __init__(self, feed: ChangeFeed, detail: str, load: Callable[[], T], initial: T) -> None:
        self._feed = feed
        self._detail = detail
        self._load = load
        self._value = initial
        self._stale = True
        self._loaded_at = 0.0
        self._generation = 0
        self._lock = threading.Lock()
        feed.subscribe(TOPIC, self._on_change)

    def _on_change(self, detail: str) -> None:
        if not detail or detail == self._detail:
            self.invalidate()

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._stale = True

    def get(self) -> T:
        """The current value; reloads only after a change (or, untrusted, every half second)."""
        if not self._stale and (
            self._feed.trustworthy()
            or time.monotonic() - self._loaded_at < UNTRUSTED_MAX_AGE_SECONDS
        ):
            return self._value
        generation = self._generation
        try:
            value = self._load()
        except (SQLAlchemyError, psycopg.Error) as exc:
            # Keep serving the last known state; the next call tries again.
            logger.warning("could not reload emulator state (%s)", type(exc).__name__)
            return self._value
        with self._lock:
            if generation == self._generation:
                self._value = value
                self._stale = False
                self._loaded_at = time.monotonic()
        return value

"""Cross-process change notification, so per-process caches never serve stale definitions or keys.

Every app owns a `ChangeFeed` (`changes.init_app`): its caches subscribe to topics on it. A
writer calls `announce(session, topic)` inside its transaction: PostgreSQL delivers the NOTIFY
to every listening server process when (and only if) the transaction commits, and the feeds of
the apps built on the session's `Database` in this process are told after the commit too. Each
app that listens (`Settings.listen_for_changes`) runs one `ChangeListener` thread that LISTENs
and dispatches to its feed. While that listener is disconnected, `feed.trustworthy()` is False
and caches must be bypassed.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.event import listen
from sqlalchemy.orm import Session

from app.extensions import Slot
from app.lru import LruDict

logger = logging.getLogger("tectonite.changes")

CHANNEL = "tectonite_changes"

# Topics, and the detail each carries.
DEFINITIONS_TOPIC = "definitions"  # a workspace's definitions changed; detail: its name
AUTH_TOPIC = "auth"  # keys, accounts or role bindings changed; no detail
# Dispatched by the listener each time it wakes (about once a second): it is alive and connected.
HEARTBEAT_TOPIC = "heartbeat"  # no detail

# A session's `info` key holding the feeds to tell after it commits (set by `app.db.Database`).
CHANGE_FEEDS_INFO_KEY = "tectonite.change_feeds"

Subscriber = Callable[[str], None]


class ChangeFeed:
    """One app's subscribers per topic, and its listener (if it listens)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._lock = threading.Lock()
        self.listener: ChangeListener | None = None

    def subscribe(self, topic: str, callback: Subscriber) -> None:
        """Call `callback(detail)` whenever `topic` changes; `detail` is "" when everything may
        have."""
        with self._lock:
            if callback not in self._subscribers[topic]:
                self._subscribers[topic].append(callback)

    def unsubscribe(self, topic: str, callback: Subscriber) -> None:
        with self._lock:
            if callback in self._subscribers.get(topic, ()):
                self._subscribers[topic].remove(callback)

    def dispatch(self, topic: str, detail: str = "") -> None:
        for callback in list(self._subscribers.get(topic, ())):
            callback(detail)

    def dispatch_all(self) -> None:
        """Everything may have changed (the listener (re)connected after missing notifications)."""
        for topic in list(self._subscribers):
            self.dispatch(topic, "")

    def trustworthy(self) -> bool:
        """False while this feed should have a listener but it is not connected."""
        return self.listener is None or self.listener.connected.is_set()

    def start_listener(self, conninfo: str) -> ChangeListener:
        """Start this feed's listener thread (once)."""
        if self.listener is None or not self.listener.is_alive():
            self.listener = ChangeListener(conninfo, self)
            self.listener.start()
        return self.listener

    def stop_listener(self, timeout: float = 5) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener.join(timeout)


def announce(session: Session, topic: str, detail: str = "") -> None:
    """Tell every process that `topic` changed, once the session's transaction commits."""
    session.execute(select(func.pg_notify(CHANNEL, f"{topic}:{detail}")))
    feeds: weakref.WeakSet[ChangeFeed] | None = session.info.get(CHANGE_FEEDS_INFO_KEY)
    if feeds is None:
        return

    def tell_local_feeds(_session: Any) -> None:
        for feed in list(feeds):
            feed.dispatch(topic, detail)

    listen(session, "after_commit", tell_local_feeds, once=True)


class WorkspaceCache:
    """A cache keyed by tuples whose first element is a workspace name; a change of `topic` on
    `feed` for a workspace drops its entries ("" drops everything). `generation` moves on every
    invalidation, so a value computed while one happened can be recognised and not stored.

    Bounded: `entries` keeps at most `max_entries`, least recently used dropped first (request
    input chooses the keys). Subclasses with more than one mapping list them in `_stores`.
    Every mutation, including marking an entry used, holds `lock`.
    """

    def __init__(self, feed: ChangeFeed, topic: str, *, max_entries: int) -> None:
        self.entries: LruDict[tuple[str, ...], Any] = LruDict(max_entries)
        self.lock = threading.Lock()
        self.generation = 0
        self.feed = feed
        feed.subscribe(topic, self.invalidate)

    def _stores(self) -> tuple[LruDict[tuple[str, ...], Any], ...]:
        return (self.entries,)

    def invalidate(self, workspace: str = "") -> None:
        with self.lock:
            self.generation += 1
            for store in self._stores():
                if not workspace:
                    store.clear()
                else:
                    for key in [k for k in store if k[0] == workspace]:
                        del store[key]


class ChangeListener(threading.Thread):
    """LISTENs on CHANNEL and dispatches each notification to `feed`; reconnects when the
    database drops."""

    def __init__(self, conninfo: str, feed: ChangeFeed) -> None:
        super().__init__(name="tectonite-change-listener", daemon=True)
        self.conninfo = conninfo
        self.feed = feed
        self.connected = threading.Event()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                logger.warning("change listener disconnected (%s); retrying", type(exc).__name__)
            finally:
                self.connected.clear()
            self._stopping.wait(0.5)

    def _listen(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            self.feed.dispatch_all()  # whatever happened while we were not listening
            while not self._stopping.is_set():
                for notification in conn.notifies(timeout=1.0):
                    topic, _, detail = notification.payload.partition(":")
                    self.feed.dispatch(topic, detail)
                self.feed.dispatch(HEARTBEAT_TOPIC)

    def stop(self) -> None:
        self._stopping.set()


FEED = Slot[ChangeFeed]("tectonite.changes")


def init_app(app: Flask, feed: ChangeFeed, *, listen_on: str | None = None) -> ChangeFeed:
    """Register the app's feed; with `listen_on` (a libpq URL), start its listener."""
    FEED.register(app, feed)
    if listen_on is not None:
        feed.start_listener(listen_on)
    return feed


def get_feed(app: Flask | None = None) -> ChangeFeed:
    return FEED.get(app)

"""Cross-process change notification, so per-process caches never serve stale definitions or keys.

A writer calls `announce(session, topic)` inside its transaction: PostgreSQL delivers the
NOTIFY to every listening server process when (and only if) the transaction commits, and the
writing process's own subscribers run after its commit too. Each server process runs one
`ChangeListener` thread that LISTENs and calls the subscribers of each topic. While the listener
is disconnected, `caches_trustworthy()` is False and caches must be bypassed.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlalchemy.event import listen
from sqlalchemy.orm import Session

logger = logging.getLogger("tectonite.changes")

CHANNEL = "tectonite_changes"
# Topics: "definitions" (detail: workspace name) and "auth" (no detail).
# Dispatched by the listener each time it wakes (about once a second): it is alive and connected.
HEARTBEAT_TOPIC = "heartbeat"
Subscriber = Callable[[str], None]

_subscribers: dict[str, list[Subscriber]] = defaultdict(list)
_listener: ChangeListener | None = None


def subscribe(topic: str, callback: Subscriber) -> None:
    """Call `callback(detail)` whenever `topic` changes; `detail` is "" when everything may have."""
    if callback not in _subscribers[topic]:
        _subscribers[topic].append(callback)


def dispatch(topic: str, detail: str = "") -> None:
    for callback in list(_subscribers.get(topic, ())):
        callback(detail)


def dispatch_all() -> None:
    """Everything may have changed (the listener (re)connected after missing notifications)."""
    for topic in list(_subscribers):
        dispatch(topic, "")


def announce(session: Session, topic: str, detail: str = "") -> None:
    """Tell every process that `topic` changed, once the session's transaction commits."""
    session.execute(select(func.pg_notify(CHANNEL, f"{topic}:{detail}")))
    listen(session, "after_commit", lambda _session: dispatch(topic, detail), once=True)


def caches_trustworthy() -> bool:
    """False while this process should have a listener but it is not connected."""
    return _listener is None or _listener.connected.is_set()


class WorkspaceCache:
    """A per-process cache keyed by tuples whose first element is a workspace name; a change of
    `topic` for a workspace drops its entries ("" drops everything). `generation` moves on every
    invalidation, so a value computed while one happened can be recognised and not stored."""

    def __init__(self, topic: str) -> None:
        self.entries: dict[tuple[str, ...], Any] = {}
        self.lock = threading.Lock()
        self.generation = 0
        subscribe(topic, self.invalidate)

    def invalidate(self, workspace: str = "") -> None:
        with self.lock:
            self.generation += 1
            if not workspace:
                self.entries.clear()
            else:
                for key in [k for k in self.entries if k[0] == workspace]:
                    del self.entries[key]


def start_listener(conninfo: str) -> ChangeListener:
    """Start this process's listener thread (once per process)."""
    global _listener
    if _listener is None or not _listener.is_alive():
        _listener = ChangeListener(conninfo)
        _listener.start()
    return _listener


class ChangeListener(threading.Thread):
    """LISTENs on CHANNEL and dispatches each notification; reconnects when the database drops."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(name="tectonite-change-listener", daemon=True)
        self.conninfo = conninfo
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
            dispatch_all()  # whatever happened while we were not listening
            while not self._stopping.is_set():
                for notification in conn.notifies(timeout=1.0):
                    topic, _, detail = notification.payload.partition(":")
                    dispatch(topic, detail)
                dispatch(HEARTBEAT_TOPIC)

    def stop(self) -> None:
        self._stopping.set()

"""The serving read path's connections: one autocommit psycopg connection per thread.

Bypasses the pool and SQLAlchemy's execution layer, and reuses the cursor (measured: 83 instead
of 120 us of client CPU per read): a store read is one prepared statement on a connection that
is always ready, as gunicorn's threads are long-lived. On an autocommit connection psycopg sends
the statement alone, with no BEGIN/ROLLBACK around it, so a lookup is one round trip.

Reads end at the request's deadline (Tecton's 2 s, `app.deadline`): the server's
`statement_timeout` stops a slow statement, and the client side stops waiting on a database
that does not answer at all (504). A connection is opened in a thread of its own and waited for
until the deadline only (503 past it); an attempt still under way then is the next request's
connection on this thread, rather than a second attempt piling up behind it.

Behind PgBouncer in transaction mode (`pooled`) nothing may outlive a transaction: no prepared
statements and no `options` startup parameter (PgBouncer before 1.21 refuses both). The read is
then sent as one simple query, `SET LOCAL statement_timeout = …; SELECT …`, which PostgreSQL
runs as one implicit transaction: still one round trip, and the deadline holds.

With read replicas (`app.store.replicas`), a `ReplicaRouter` picks the connection per read.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import Connection

from app.deadline import DeadlineConnection, NotConnectedInTime, remaining, start_connecting

APPLICATION_NAME = "tectonite-serving"


class CursorSource(Protocol):
    """Where store reads get their cursor from."""

    def cursor(self) -> psycopg.Cursor[Any]:
        """A ready cursor for this thread."""
        ...

    def fetch(self, query: str, params: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run one read statement on this thread's cursor and return its rows."""
        ...

    def discard(self) -> None:
        """The cursor's connection failed: drop it, so the next `cursor()` opens a new one."""
        ...

    def close(self) -> None:
        """Close every connection opened (the app is going away)."""
        ...


class ThreadConnections:
    """Each thread's own autocommit connection and cursor, opened on first use."""

    def __init__(self, conninfo: str, *, statement_timeout_ms: int, pooled: bool = False) -> None:
        self.conninfo = conninfo
        self.statement_timeout_ms = statement_timeout_ms
        self.pooled = pooled
        self._prefix = f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "
        self._local = threading.local()
        self._open: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def cursor(self) -> psycopg.Cursor[Any]:
        cursor: psycopg.Cursor[Any] | None = getattr(self._local, "cursor", None)
        if cursor is None or cursor.closed or cursor.connection.closed:
            connection = self._connection()
            cursor = psycopg.ClientCursor(connection) if self.pooled else connection.cursor()
            self._local.cursor = cursor
            with self._lock:
                self._open.append(connection)
        return cursor

    def _connection(self) -> psycopg.Connection[Any]:
        """A new connection, waited for until the request's deadline at most."""
        pending: Future[psycopg.Connection[Any]] | None = getattr(self._local, "pending", None)
        if pending is not None and pending.done() and pending.exception() is not None:
            pending = None  # an earlier request's attempt failed: this one tries afresh
        if pending is None:
            pending = start_connecting(self._open_connection)
            self._local.pending = pending
        left = remaining()
        try:
            connection = pending.result(timeout=None if left is None else max(left, 0.0))
        except FutureTimeout:
            raise NotConnectedInTime("no database connection by the request's deadline") from None
        finally:
            if pending.done():
                self._local.pending = None
        return connection

    def _open_connection(self) -> psycopg.Connection[Any]:
        if self.pooled:
            connection = DeadlineConnection.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=5,
                application_name=APPLICATION_NAME,
                prepare_threshold=None,
            )
        else:
            connection = DeadlineConnection.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=5,
                application_name=APPLICATION_NAME,
                options=f"-c statement_timeout={self.statement_timeout_ms}",
            )
        # Stored features are json: decode them with orjson, on this connection only.
        set_json_loads(orjson.loads, connection)
        return connection

    def fetch(self, query: str, params: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
        cursor = self.cursor()
        if self.pooled:
            # One simple query, one implicit transaction: the SET LOCAL ends with it.
            cursor.execute(self._prefix + query, params)
            cursor.nextset()
            return cursor.fetchall()
        cursor.execute(query, params, prepare=True)
        return cursor.fetchall()

    def discard(self) -> None:
        cursor: psycopg.Cursor[Any] | None = getattr(self._local, "cursor", None)
        self._local.cursor = None
        if cursor is None:
            return
        connection = cursor.connection
        with self._lock:
            if connection in self._open:
                self._open.remove(connection)
        connection.close()

    def close(self) -> None:
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()


class BoundConnection:
    """Reads on one given SQLAlchemy connection (tests: inside their outer transaction)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def cursor(self) -> psycopg.Cursor[Any]:
        driver: psycopg.Connection[Any] = self.connection.connection.driver_connection  # type: ignore[assignment]  # a psycopg engine's connections are psycopg's
        return driver.cursor()

    def fetch(self, query: str, params: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
        cursor = self.cursor()
        cursor.execute(query, params, prepare=True)
        return cursor.fetchall()

    def discard(self) -> None:
        return None  # the test owns the connection

    def close(self) -> None:
        return None

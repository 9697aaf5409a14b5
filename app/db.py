"""Database access: the engine, the per-request session and the autocommit read connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg.types.json
from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine, MetaData, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.config import Settings
from auth.models import NAMING_CONVENTION

# Decode json/jsonb columns with orjson: the online store's values are read on every request.
psycopg.types.json.set_json_loads(orjson.loads)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Database:
    """The engine plus two ways in: a transactional `Session` and an autocommit read connection.

    Reads on the serving path go through `read()`: on an AUTOCOMMIT connection psycopg sends the
    statement alone, with no BEGIN/ROLLBACK around it, so a lookup is one round trip.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        read_engine: Engine | None = None,
        store_conninfo: str | None = None,
        store_timeout_ms: int = 2000,
    ) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine.execution_options(isolation_level="AUTOCOMMIT")
        self.sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
        self._connection: Connection | None = None
        self._store_conninfo = store_conninfo or engine.url.render_as_string(
            hide_password=False
        ).replace("postgresql+psycopg://", "postgresql://", 1)
        self._store_timeout_ms = store_timeout_ms
        self._store_local = threading.local()
        self._store_connections: list[psycopg.Connection[Any]] = []
        self._store_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(
            settings.sqlalchemy_url,
            # One connection per gunicorn thread, plus a little slack for the CLI in-process.
            pool_size=settings.threads + 1,
            max_overflow=2,
            pool_timeout=5,
            pool_recycle=3600,
            connect_args={
                "connect_timeout": 5,
                "application_name": "tectonite",
            },
        )
        return cls(
            engine,
            store_conninfo=settings.libpq_url,
            store_timeout_ms=settings.request_timeout_ms,
        )

    @classmethod
    def bound_to(cls, connection: Connection) -> Database:
        """A Database whose sessions and reads all use `connection` (tests: one outer transaction).

        Sessions join the connection's transaction through savepoints, so code under test may
        commit and the test still rolls everything back at the end.
        """
        database = cls(connection.engine, read_engine=connection.engine)
        database.sessionmaker = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        database._connection = connection
        return database

    @property
    def is_bound(self) -> bool:
        """True for a Database made by `bound_to` (one shared connection: no background work)."""
        return self._connection is not None

    def session(self) -> Session:
        """A new transactional session; the caller commits (views and CLI commands only)."""
        return self.sessionmaker()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for read-only statements, outside any transaction."""
        if self._connection is not None:
            yield self._connection
            return
        with self.read_engine.connect() as connection:
            yield connection

    def store_cursor(self) -> psycopg.Cursor[Any]:
        """This thread's own cursor on its own autocommit connection, for the serving read path.

        Bypasses the pool and SQLAlchemy's execution layer, and reuses the cursor (measured:
        83 instead of 120 us of client CPU per read): a store read is one prepared statement on
        a connection that is always ready, as gunicorn's threads are long-lived. Reads time out
        after the request deadline (Tecton's 2 s), which answers 504.
        """
        if self._connection is not None:
            driver: psycopg.Connection[Any] = self._connection.connection.driver_connection
            return driver.cursor()
        cursor: psycopg.Cursor[Any] | None = getattr(self._store_local, "cursor", None)
        if cursor is None or cursor.closed or cursor.connection.closed:
            connection = psycopg.connect(
                self._store_conninfo,
                autocommit=True,
                connect_timeout=5,
                application_name="tectonite-serving",
                options=f"-c statement_timeout={self._store_timeout_ms}",
            )
            cursor = connection.cursor()
            self._store_local.cursor = cursor
            with self._store_lock:
                self._store_connections.append(connection)
        return cursor

    def discard_store_connection(self) -> None:
        """Drop this thread's store connection (it failed); the next read opens a new one."""
        if self._connection is not None:
            return
        cursor = getattr(self._store_local, "cursor", None)
        self._store_local.cursor = None
        connection = cursor.connection if cursor is not None else None
        if connection is not None:
            with self._store_lock:
                if connection in self._store_connections:
                    self._store_connections.remove(connection)
            connection.close()

    def dispose(self) -> None:
        with self._store_lock:
            for connection in self._store_connections:
                connection.close()
            self._store_connections.clear()
        self.engine.dispose()


EXTENSION_KEY = "tectonite.db"


def init_app(app: Flask, database: Database) -> None:
    app.extensions[EXTENSION_KEY] = database
    app.teardown_appcontext(_close_session)


def get_database() -> Database:
    database: Database = current_app.extensions[EXTENSION_KEY]
    return database


def get_session() -> Session:
    """The request's session, created on first use and closed at teardown (rolled back if open)."""
    if "db_session" not in g:
        g.db_session = get_database().session()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()

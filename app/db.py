"""Database access: the engine, the per-request session and the autocommit read connection."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from flask import Flask, g
from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.changes import CHANGE_FEEDS_INFO_KEY, ChangeFeed
from app.config import Settings
from app.deadline import DeadlineConnection, connect_by_deadline
from app.extensions import Slot
from auth.models import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Database:
    """The engine and the transactional `Session`s on it, plus a pooled autocommit connection
    for occasional reads. The serving read path has its own connections (`app.store`)."""

    def __init__(self, engine: Engine, *, libpq_url: str | None = None) -> None:
        self.engine = engine
        self.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.libpq_url = libpq_url or engine.url.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1
        )
        # The change feeds to tell after a session commits an announcement; weakly held, so an
        # app that is gone stops hearing. Shared by reference with every session's `info`.
        self.change_feeds: weakref.WeakSet[ChangeFeed] = weakref.WeakSet()
        self.sessionmaker = sessionmaker(
            bind=engine, expire_on_commit=False, info={CHANGE_FEEDS_INFO_KEY: self.change_feeds}
        )
        self.bound_connection: Connection | None = None

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
                # Behind PgBouncer in transaction mode a statement prepared on one server
                # connection is unknown on the next: none are prepared (psycopg's default
                # prepares a statement run five times).
                **({"prepare_threshold": None} if settings.behind_pgbouncer else {}),
            },
            # json/jsonb columns decoded with orjson, on this engine's connections only.
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "do_connect", _connect_by_deadline)
        return cls(engine, libpq_url=settings.libpq_url)

    @classmethod
    def bound_to(cls, connection: Connection) -> Database:
        """A Database whose sessions and reads all use `connection` (tests: one outer transaction).

        Sessions join the connection's transaction through savepoints, so code under test may
        commit and the test still rolls everything back at the end. The store reads on it too.
        """
        database = cls(connection.engine)
        database.sessionmaker = sessionmaker(
            bind=connection,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
            info={CHANGE_FEEDS_INFO_KEY: database.change_feeds},
        )
        database.bound_connection = connection
        driver = connection.connection.driver_connection
        if isinstance(driver, DeadlineConnection):
            # The test's transaction outlives every request: a slow request must not close it.
            driver.follows_deadline = False
        return database

    def session(self) -> Session:
        """A new transactional session; the caller commits (views and CLI commands only)."""
        return self.sessionmaker()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for read-only statements, outside any transaction."""
        if self.bound_connection is not None:
            yield self.bound_connection
            return
        with self.read_engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()


def _connect_by_deadline(
    _dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> psycopg.Connection[Any]:
    """The engine's connections wait no longer than a serving request's deadline, as the
    store's do (`app.deadline`); outside a request they are plain psycopg connections."""
    return connect_by_deadline(lambda: DeadlineConnection.connect(*cargs, **cparams))


DATABASE = Slot[Database]("tectonite.db")


def init_app(app: Flask, database: Database) -> None:
    DATABASE.register(app, database)
    app.teardown_appcontext(_close_session)


def get_database(app: Flask | None = None) -> Database:
    return DATABASE.get(app)


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

"""The request deadline: serving answers within Tecton's 2 s, whatever it waits on.

Tecton's serving backend gives up after 2 s and answers 504 `Timed out` (code 4). Here a
serving or probe request's deadline starts when the app begins handling it (`init_app`), and
everything such a request may wait on checks it:

- database statements and connects: `DeadlineConnection` (the store's connections and the
  engine's) stops waiting at the deadline, closes the connection and raises `DeadlineReached`
  (504), so even a database that hangs without answering (stopped, or a network that drops
  packets), on which PostgreSQL's own `statement_timeout` never fires, costs a request no more
  than its deadline; a connection that cannot be opened by then raises `NotConnectedInTime`
  (503, code 14: the database is unreachable);
- realtime transforms (`app.serving.transform_pool`).

Outside such a request (the CLI, background threads, ingest) there is no deadline and waits
are as psycopg's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar, Token
from typing import Any, TypeVar

import psycopg
from flask import Flask, request
from psycopg.abc import PQGen

RV = TypeVar("RV")

# The monotonic instant the current request must be answered by; None outside one.
_DEADLINE: ContextVar[float | None] = ContextVar("tectonite.deadline", default=None)
_ENVIRON_KEY = "tectonite.deadline_token"
# The blueprints whose requests get a deadline: serving and the probes. Ingest writes may
# legitimately take longer (large batches) and must never be cut between commit and answer.
BLUEPRINTS = frozenset({"serving", "health"})
# psycopg's own wake-up interval while waiting (lets Ctrl-C through); kept as psycopg has it.
_WAIT_INTERVAL = 0.1


def current() -> float | None:
    """The current request's deadline (`time.monotonic()` scale), or None."""
    return _DEADLINE.get()


def remaining() -> float | None:
    """Seconds left before the deadline (may be negative), or None without one."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def begin(seconds: float) -> Token[float | None]:
    """Give the current context a deadline `seconds` from now; `end(token)` removes it."""
    return _DEADLINE.set(time.monotonic() + seconds)


def end(token: Token[float | None]) -> None:
    _DEADLINE.reset(token)


def init_app(app: Flask, seconds: float) -> None:
    """Every request of BLUEPRINTS gets a deadline `seconds` after it starts being handled."""

    def start() -> None:
        if request.blueprint in BLUEPRINTS:
            request.environ[_ENVIRON_KEY] = begin(seconds)

    def finish(_exc: BaseException | None) -> None:
        token = request.environ.pop(_ENVIRON_KEY, None)
        if token is not None:
            end(token)

    # First of the before_request functions, so the deadline covers everything after it.
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.teardown_request(finish)


# --------------------------------------------------------------------------- the database


class DeadlineReached(psycopg.OperationalError):
    """The request's deadline passed while waiting for the database; the connection is closed."""


class NotConnectedInTime(psycopg.OperationalError):
    """No database connection could be opened before the request's deadline."""


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait (statements, commits, fetches) ends at the current
    request's deadline. psycopg funnels all of them through `Connection.wait`, which takes a
    timeout; past it the connection's state is unknown, so it is closed."""

    # False for a connection that must outlive any request (a test's outer transaction).
    follows_deadline = True

    def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL, timeout: float | None = None
    ) -> RV:
        deadline = _DEADLINE.get()
        if deadline is None or not self.follows_deadline:
            return super().wait(gen, interval, timeout)
        left = deadline - time.monotonic()
        if left <= 0:
            self.close()
            raise DeadlineReached("the request's deadline passed before the statement was sent")
        try:
            return super().wait(gen, interval, left if timeout is None else min(timeout, left))
        except psycopg.OperationalError:
            if time.monotonic() < deadline:
                raise
            self.close()
            raise DeadlineReached("the database did not answer by the request's deadline") from None


def connect_by_deadline(
    open_connection: Callable[[], psycopg.Connection[Any]],
) -> psycopg.Connection[Any]:
    """`open_connection()`, given up on at the current request's deadline (psycopg's own connect
    timeout is whole seconds, at least 2). The attempt goes on in its thread: a connection it
    opens after the request gave up is closed."""
    left = remaining()
    if left is None:
        return open_connection()
    pending = start_connecting(open_connection)
    try:
        return pending.result(timeout=max(left, 0.0))
    except FutureTimeout:
        pending.add_done_callback(_close_result)
        raise NotConnectedInTime("no database connection by the request's deadline") from None


def start_connecting(
    open_connection: Callable[[], psycopg.Connection[Any]],
) -> Future[psycopg.Connection[Any]]:
    """Run `open_connection()` in a thread of its own; its outcome in the future returned."""
    pending: Future[psycopg.Connection[Any]] = Future()

    def attempt() -> None:
        try:
            pending.set_result(open_connection())
        except BaseException as exc:  # handed to the waiter, whatever it is
            pending.set_exception(exc)

    threading.Thread(target=attempt, name="tectonite-db-connect", daemon=True).start()
    return pending


def _close_result(pending: Future[psycopg.Connection[Any]]) -> None:
    if pending.exception() is None:
        pending.result().close()

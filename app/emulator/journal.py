"""The request journal: every API request (not `/_emulator`, not the probes), newest first.

Recording stays off the request's critical path: the request thread puts a few raw fields on a
bounded in-process queue (a full queue drops the entry), and a background thread parses them
and writes whole batches with COPY, then trims the table to its cap. A write that fails is
logged and dropped; it never fails a request. Reads (`/_emulator/requests`) first flush this
process's queue; entries of other processes follow within milliseconds.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from flask import Request, Response, request
from sqlalchemy import Select, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.db import Database
from app.emulator.models import JournalCleared, JournalEntry, rowcount
from app.emulator.targets import endpoint_of, is_exempt, parse_body, target_of
from app.extensions import Slot
from app.types import format_timestamp

logger = logging.getLogger("tectonite.emulator.journal")

START_ENVIRON_KEY = "tectonite.started"
QUEUE_SIZE = 10_000  # entries waiting per process; more drop the oldest
BATCH_SIZE = 1_000
BATCH_WINDOW_SECONDS = 0.1
# The table is trimmed to its cap once this many entries were written since the last trim.
TRIM_EVERY = 100
MAX_BODY_BYTES = 64 * 1024
INSERT_SQL = (
    "INSERT INTO emulator_journal (time, method, path, endpoint, workspace, feature_service, "
    "api_key_id, body, status, error, duration_ms) "
    "SELECT time, method, path, endpoint, workspace, feature_service, api_key_id, body, status, "
    "error, duration_ms FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS r(time timestamptz, "
    "method text, path text, endpoint text, workspace text, feature_service text, "
    "api_key_id text, body jsonb, status integer, error text, duration_ms double precision)"
)
TRIM_SQL = (
    "DELETE FROM emulator_journal WHERE id <= "
    "(SELECT id FROM emulator_journal ORDER BY id DESC OFFSET %(cap)s LIMIT 1)"
)


@dataclass(frozen=True, slots=True)
class Pending:
    """What the request thread hands over: raw fields only, parsed later."""

    time: datetime
    method: str
    path: str
    url_rule: str | None
    view_args: dict[str, Any] | None
    body: bytes  # empty when the body was larger than MAX_BODY_BYTES (not kept: see body_bytes)
    body_bytes: int
    status: int
    response: bytes  # the error body (status >= 400), else b""
    api_key_id: str | None
    duration_ms: float

    def row(self) -> dict[str, Any]:
        endpoint = endpoint_of(self.url_rule)
        oversized = self.body_bytes > MAX_BODY_BYTES
        parsed = None if oversized else parse_body(self.body)
        target = target_of(endpoint, self.view_args, parsed)
        if oversized:
            body: Any = {"truncated": True, "bytes": self.body_bytes}
        elif parsed is None and self.body:
            body = {"unparsed": self.body[:1000].decode("utf-8", "replace")}
        else:
            body = parsed
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "endpoint": endpoint,
            "workspace": target.workspace,
            "feature_service": target.feature_service,
            "api_key_id": self.api_key_id,
            "body": body,
            "status": self.status,
            "error": error_message(self.response),
            "duration_ms": self.duration_ms,
        }


def error_message(data: bytes) -> str | None:
    """The message of an error body: Tecton's envelope, or the Ingest API's error shapes."""
    if not data:
        return None
    body = parse_body(data)
    if not isinstance(body, dict):
        return data[:500].decode("utf-8", "replace")
    if isinstance(body.get("message"), str):
        return str(body["message"])
    request_error = body.get("requestError")
    if isinstance(request_error, dict) and "errorMessage" in request_error:
        return str(request_error["errorMessage"])
    record_errors = body.get("recordErrors")
    if isinstance(record_errors, list) and record_errors:
        first = record_errors[0]
        message = str(first.get("errorMessage")) if isinstance(first, dict) else str(first)
        more = len(record_errors) - 1
        return message + (f" (and {more} more record errors)" if more else "")
    return None


def write_batch(execute: Callable[[str, dict[str, Any]], object], rows: list[dict[str, Any]],
                cap: int | None) -> None:  # fmt: skip
    """Insert the rows in one statement (the batch travels as one JSON document, which costs
    the server process least) and, with `cap`, drop all but the newest `cap` entries."""
    execute(INSERT_SQL, {"rows": orjson.dumps(rows, option=orjson.OPT_UTC_Z).decode()})
    if cap is not None:
        execute(TRIM_SQL, {"cap": cap})


class JournalWriter:
    """Takes entries from request threads; a background thread writes them in batches.

    The request side appends to a bounded deque (a full one drops its oldest entry) and sets an
    event only when the writer sleeps, so a request pays a few microseconds and no lock. With
    `background=False` (an app bound to a test's connection) there is no thread: entries are
    written by `flush()` (every journal read calls it), on the caller's thread.
    """

    def __init__(
        self,
        database: Database,
        cap: int,
        *,
        background: bool,
        conninfo: str | None = None,
        pooled: bool = False,
    ) -> None:
        self._database = database
        self._conninfo = conninfo
        # Behind PgBouncer (transaction mode): no startup options, nothing prepared.
        self._pooled = pooled
        self._connection: psycopg.Connection[Any] | None = None
        self.cap = cap
        self._background = background
        self._entries: deque[tuple[int, Pending]] = deque(maxlen=QUEUE_SIZE)
        self._sequence = itertools.count(1)
        self._last_submitted = 0
        self._written_through = 0
        self._written = threading.Condition()
        self._wake = threading.Event()
        self._flush_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._since_trim = 0
        self.dropped = 0

    # ---------------------------------------------------------------- request side

    def submit(self, entry: Pending) -> None:
        if self._background and self._thread is None:
            self._start()
        if len(self._entries) == QUEUE_SIZE:
            self.dropped += 1  # the deque drops its oldest entry
        sequence = next(self._sequence)
        self._entries.append((sequence, entry))
        self._last_submitted = sequence
        if self._background and not self._wake.is_set():
            self._wake.set()

    def after_request(self, response: Response) -> Response:
        """Hand this request's facts to the writer; never raises."""
        try:
            # One context lookup: each `request.x` through Flask's proxy costs another.
            current: Request = request._get_current_object()  # type: ignore[attr-defined]
            if not is_exempt(current.path):
                self.submit(self._pending(current, response))
        except Exception:  # a journal problem must never fail the request
            logger.exception("could not record a request in the journal")
        return response

    @staticmethod
    def _pending(current: Request, response: Response) -> Pending:
        environ = current.environ
        started = environ.get(START_ENVIRON_KEY)
        principal = environ.get("tectonite.principal")
        try:
            # A request refused for its key may have a body nobody read yet: under granian,
            # reading it here could wait on a client that never sends it, holding a request
            # thread (see TectoniteRequest.body_at_hand). It is then recorded without one.
            at_hand = getattr(current, "body_at_hand", True)
            skip = response.status_code == 401 and not at_hand
            body = b"" if skip else current.get_data(cache=True)
        except Exception:  # e.g. a body over the size limit (413)
            body = b""
        status = response.status_code
        rule = current.url_rule
        size = len(body)
        # Entries wait in memory until written: an oversized body is not kept, only its size.
        kept = body if size <= MAX_BODY_BYTES else b""
        return Pending(
            time=datetime.now(UTC),
            method=current.method,
            path=current.path,
            url_rule=rule.rule if rule is not None else None,
            view_args=current.view_args,
            body=kept,
            body_bytes=size,
            status=status,
            response=response.get_data() if status >= 400 and not response.is_streamed else b"",
            api_key_id=getattr(principal, "key_id", None),
            duration_ms=(time.perf_counter() - started) * 1000 if started else 0.0,
        )

    # ---------------------------------------------------------------- writer side

    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tectonite-journal", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Gather for a moment (one transaction per batch), unless a reader is waiting.
            self._flush_now.wait(BATCH_WINDOW_SECONDS)
            self._wake.clear()
            self._flush_now.clear()
            self._drain()

    def _drain(self) -> None:
        # Only what was queued when the drain began: entries that arrive while a batch is
        # being written wait for the next window. Draining until the queue is empty made the
        # writer chase each new request under load (batches of two or three, 55 µs each).
        remaining = len(self._entries)
        while remaining > 0 and self._entries:
            batch: list[tuple[int, Pending]] = []
            while self._entries and len(batch) < min(BATCH_SIZE, remaining):
                batch.append(self._entries.popleft())
            remaining -= len(batch)
            self._write([entry for _, entry in batch])
            with self._written:
                self._written_through = batch[-1][0]
                self._written.notify_all()

    def _write(self, batch: list[Pending]) -> None:
        try:
            rows = [entry.row() for entry in batch]
            self._since_trim += len(rows)
            trim = self._since_trim >= min(TRIM_EVERY, self.cap) or not self._background
            if self._background:
                # One round trip per batch: autocommit, and no wait for the WAL flush (the
                # journal is a debugging aid).
                connection = self._writer_connection()
                if self._pooled:
                    with connection.transaction():
                        connection.execute("SET LOCAL synchronous_commit = off")
                        write_batch(connection.execute, rows, self.cap if trim else None)
                else:
                    write_batch(connection.execute, rows, self.cap if trim else None)
            else:
                with self._database.session() as session:
                    driver = session.connection().connection.driver_connection
                    assert driver is not None  # noqa: S101 (an open session has one)
                    write_batch(driver.execute, rows, self.cap if trim else None)
                    session.commit()
            if trim:
                self._since_trim = 0
        except Exception as exc:  # the writer thread must survive anything a batch does
            self.dropped += len(batch)
            logger.warning("journal: dropped %d entries (%s)", len(batch), type(exc).__name__)
            if self._connection is not None and self._connection.broken:
                self._connection = None

    def _writer_connection(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            if self._pooled:
                self._connection = psycopg.connect(
                    self._conninfo or "",
                    autocommit=True,
                    connect_timeout=5,
                    application_name="tectonite-journal",
                    prepare_threshold=None,
                )
            else:
                self._connection = psycopg.connect(
                    self._conninfo or "",
                    autocommit=True,
                    connect_timeout=5,
                    application_name="tectonite-journal",
                    options="-c synchronous_commit=off",
                )
        return self._connection

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything this process queued so far is written; False on timeout."""
        if not self._background:
            self._drain()
            return True
        target = self._last_submitted
        if self._written_through >= target:
            return True
        self._flush_now.set()
        self._wake.set()
        with self._written:
            return self._written.wait_for(lambda: self._written_through >= target, timeout)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class JournalQuery:
    limit: int = 100
    endpoint: str | None = None
    workspace: str | None = None
    feature_service: str | None = None
    status: int | None = None


def read_journal(
    session: Session, query: JournalQuery, cap: int | None = None
) -> list[dict[str, Any]]:
    """Entries newest first, filtered; never more than `cap` (the table is trimmed lazily)."""
    limit = min(query.limit, cap) if cap else query.limit
    statement = _visible(select(JournalEntry)).order_by(JournalEntry.id.desc()).limit(limit)
    filters: list[tuple[Any, Any]] = [
        (JournalEntry.endpoint, query.endpoint),
        (JournalEntry.workspace, query.workspace),
        (JournalEntry.feature_service, query.feature_service),
        (JournalEntry.status, query.status),
    ]
    for column, value in filters:
        if value is not None:
            statement = statement.where(column == value)
    return [entry_json(e) for e in session.scalars(statement)]


def entries_after(session: Session, last_id: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Entries newer than `last_id`, oldest first (`requests --follow`)."""
    statement = (
        _visible(select(JournalEntry))
        .where(JournalEntry.id > last_id)
        .order_by(JournalEntry.id)
        .limit(limit)
    )
    return [entry_json(e) for e in session.scalars(statement)]


def _visible(statement: Select[Any]) -> Select[Any]:
    """Only entries of requests that ended after the last clear."""
    cleared = select(JournalCleared.cleared_at).where(JournalCleared.id == 1).scalar_subquery()
    return statement.where(or_(cleared.is_(None), JournalEntry.time > cleared))


def clear_journal(session: Session) -> int:
    """Empty the journal, also of entries still on their way from other processes (they
    belong to requests that ended before now, so they stay hidden when they arrive)."""
    now = datetime.now(UTC)
    session.execute(
        pg_insert(JournalCleared)
        .values(id=1, cleared_at=now)
        .on_conflict_do_update(index_elements=["id"], set_={"cleared_at": now})
    )
    return rowcount(session.execute(delete(JournalEntry).where(JournalEntry.time <= now)))


def entry_json(entry: JournalEntry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": entry.id,
        "time": format_timestamp(entry.time),
        "method": entry.method,
        "path": entry.path,
        "endpoint": entry.endpoint,
        "workspace": entry.workspace,
        "featureService": entry.feature_service,
        "apiKeyId": entry.api_key_id,
        "body": entry.body,
        "status": entry.status,
        "error": entry.error,
        "durationMs": round(entry.duration_ms, 3),
    }
    return body


# The app's writer, or None with `TECTONITE_JOURNAL=off`.
JOURNAL = Slot[JournalWriter | None]("tectonite.emulator.journal")


def mark_start() -> None:
    """Before every request: when it started (the journal's duration)."""
    request.environ[START_ENVIRON_KEY] = time.perf_counter()

"""The request journal: every API request (not `/_emulator`, not the probes), newest first.

Recording stays off the request's critical path: the request thread puts a few raw fields on a
bounded in-process queue (a full queue drops the entry), and a background thread parses them
and writes whole batches with COPY, then trims the table to its cap. A write that fails is
logged and dropped; it never fails a request. Reads (`/_emulator/requests`) first flush this
process's queue; entries of other processes follow within milliseconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from flask import Response, request
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from app.db import Database
from app.emulator.models import JournalEntry, rowcount
from app.emulator.targets import endpoint_of, is_exempt, parse_body, target_of
from app.types import format_timestamp

logger = logging.getLogger("tectonite.emulator.journal")

EXTENSION_KEY = "tectonite.emulator.journal"
START_ENVIRON_KEY = "tectonite.started"
QUEUE_SIZE = 10_000
BATCH_SIZE = 1_000
BATCH_WINDOW_SECONDS = 0.05
# The table is trimmed to its cap once this many entries were written since the last trim.
TRIM_EVERY = 100
MAX_BODY_BYTES = 64 * 1024
COLUMNS = ("time", "method", "path", "endpoint", "workspace", "feature_service", "api_key_id",
           "body", "status", "error", "duration_ms")  # fmt: skip
COPY_SQL = f"COPY emulator_journal ({', '.join(COLUMNS)}) FROM STDIN"
TRIM_SQL = (
    "DELETE FROM emulator_journal WHERE id <= "
    "(SELECT id FROM emulator_journal ORDER BY id DESC OFFSET :cap LIMIT 1)"
)


@dataclass(frozen=True, slots=True)
class Pending:
    """What the request thread hands over: raw fields only, parsed later."""

    time: datetime
    method: str
    path: str
    url_rule: str | None
    view_args: dict[str, Any] | None
    body: bytes
    status: int
    response: bytes  # the error body (status >= 400), else b""
    api_key_id: str | None
    duration_ms: float

    def row(self) -> tuple[Any, ...]:
        endpoint = endpoint_of(self.url_rule)
        parsed = parse_body(self.body) if len(self.body) <= MAX_BODY_BYTES else None
        target = target_of(endpoint, self.view_args, parsed)
        if len(self.body) > MAX_BODY_BYTES:
            body: Any = {"truncated": True, "bytes": len(self.body)}
        elif parsed is None and self.body:
            body = {"unparsed": self.body[:1000].decode("utf-8", "replace")}
        else:
            body = parsed
        return (
            self.time,
            self.method,
            self.path,
            endpoint,
            target.workspace,
            target.feature_service,
            self.api_key_id,
            None if body is None else orjson.dumps(body).decode(),
            self.status,
            error_message(self.response),
            self.duration_ms,
        )


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


def write_batch(session: Session, rows: list[tuple[Any, ...]], cap: int | None) -> None:
    """COPY the rows in and (with `cap`) drop all but the newest `cap`; the caller commits.

    The journal is a debugging aid, so its commits do not wait for the WAL flush."""
    session.execute(text("SET LOCAL synchronous_commit = off"))
    driver: psycopg.Connection[Any] = session.connection().connection.driver_connection  # type: ignore[assignment]
    with driver.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        for row in rows:
            copy.write_row(row)
    if cap is not None:
        session.execute(text(TRIM_SQL), {"cap": cap})


class JournalWriter:
    """Queues entries from request threads; a background thread writes them in batches.

    With `background=False` (an app bound to a test's connection) entries are written at once,
    on the request's thread.
    """

    def __init__(self, database: Database, cap: int, *, background: bool) -> None:
        self._database = database
        self.cap = cap
        self._background = background
        self._queue: queue.Queue[Pending] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._flush_now = threading.Event()
        self._since_trim = 0
        self.dropped = 0

    # ---------------------------------------------------------------- request side

    def submit(self, entry: Pending) -> None:
        if not self._background:
            self._write([entry])
            return
        if self._thread is None:
            self._start()
        with self._idle:
            self._in_flight += 1
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            self._done(1)

    def after_request(self, response: Response) -> Response:
        """Hand this request's facts to the writer; never raises."""
        try:
            if not is_exempt(request.path):
                self.submit(self._pending(response))
        except Exception:  # a journal problem must never fail the request
            logger.exception("could not record a request in the journal")
        return response

    @staticmethod
    def _pending(response: Response) -> Pending:
        started = request.environ.get(START_ENVIRON_KEY)
        principal = request.environ.get("tectonite.principal")
        try:
            body = request.get_data(cache=True)
        except Exception:  # e.g. a body over the size limit (413)
            body = b""
        status = response.status_code
        return Pending(
            time=datetime.now(UTC),
            method=request.method,
            path=request.path,
            url_rule=request.url_rule.rule if request.url_rule else None,
            view_args=request.view_args,
            body=body,
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
            batch = [self._queue.get()]
            # Collect for a moment: one transaction per batch, not per request.
            deadline = time.monotonic() + BATCH_WINDOW_SECONDS
            while len(batch) < BATCH_SIZE and not self._flush_now.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            self._flush_now.clear()
            self._write(batch)
            self._done(len(batch))

    def _done(self, count: int) -> None:
        with self._idle:
            self._in_flight -= count
            if self._in_flight <= 0:
                self._idle.notify_all()

    def _write(self, batch: list[Pending]) -> None:
        try:
            rows = [entry.row() for entry in batch]
            self._since_trim += len(rows)
            trim = self._since_trim >= min(TRIM_EVERY, self.cap) or not self._background
            with self._database.session() as session:
                write_batch(session, rows, self.cap if trim else None)
                session.commit()
            if trim:
                self._since_trim = 0
        except Exception as exc:  # the writer thread must survive anything a batch does
            self.dropped += len(batch)
            logger.warning("journal: dropped %d entries (%s)", len(batch), type(exc).__name__)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything this process queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        self._flush_now.set()
        with self._idle:
            while self._in_flight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True


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
    statement = select(JournalEntry).order_by(JournalEntry.id.desc()).limit(limit)
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
        select(JournalEntry).where(JournalEntry.id > last_id).order_by(JournalEntry.id).limit(limit)
    )
    return [entry_json(e) for e in session.scalars(statement)]


def clear_journal(session: Session) -> int:
    return rowcount(session.execute(delete(JournalEntry)))


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


def mark_start() -> None:
    """Before every request: when it started (the journal's duration)."""
    request.environ[START_ENVIRON_KEY] = time.perf_counter()

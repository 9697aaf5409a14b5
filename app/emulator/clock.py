"""The emulated clock: the one "now" for ttl expiry, the feature-service cache and
aggregation windows (serving, the Stream Ingest API, and file loads through
`app.serving.clock.stored_now`). Key expiry, throttling and sloInfo timings keep real time.

State lives in one row of `emulator_clock` (no row: real time). Running, now = real time +
offset; frozen, now = the frozen instant. Each process keeps a copy (`EmulatedClock`), reloaded
after a change notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from app import changes
from app.changes import ChangeFeed
from app.db import Database
from app.emulator.models import EmulatorClock
from app.emulator.snapshot import TOPIC, Snapshot
from app.extensions import Slot
from app.types import format_timestamp

DETAIL = "clock"


@dataclass(frozen=True, slots=True)
class ClockState:
    frozen_at: datetime | None = None
    offset_seconds: float = 0.0

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    def now(self, real: datetime | None = None) -> datetime:
        if self.frozen_at is not None:
            return self.frozen_at
        real = real or datetime.now(UTC)
        if not self.offset_seconds:
            return real
        return real + timedelta(seconds=self.offset_seconds)

    def describe(self) -> dict[str, Any]:
        """The API's view: `{"now", "frozen", "offsetSeconds"}` (offset from real time)."""
        real = datetime.now(UTC)
        now = self.now(real)
        return {
            "now": format_timestamp(now),
            "frozen": self.frozen,
            "offsetSeconds": round((now - real).total_seconds(), 6),
        }


REAL_TIME = ClockState()


def read_clock(connection: Connection) -> ClockState:
    row = connection.execute(
        select(EmulatorClock.frozen_at, EmulatorClock.offset_seconds).where(EmulatorClock.id == 1)
    ).first()
    if row is None:
        return REAL_TIME
    return ClockState(frozen_at=row.frozen_at, offset_seconds=float(row.offset_seconds))


def _locked_clock(session: Session) -> EmulatorClock:
    session.execute(
        text(
            "INSERT INTO emulator_clock (id, frozen, offset_seconds) VALUES (1, false, 0) "
            "ON CONFLICT (id) DO NOTHING"
        )
    )
    return session.scalars(
        select(EmulatorClock).where(EmulatorClock.id == 1).with_for_update()
    ).one()


def _store(session: Session, row: EmulatorClock, state: ClockState) -> ClockState:
    row.frozen = state.frozen
    row.frozen_at = state.frozen_at
    row.offset_seconds = state.offset_seconds
    session.flush()
    changes.announce(session, TOPIC, DETAIL)
    return state


def freeze_clock(session: Session, at: datetime) -> ClockState:
    """Stop the clock at `at` (any time, also in the past)."""
    return _store(session, _locked_clock(session), ClockState(frozen_at=at.astimezone(UTC)))


def advance_clock(session: Session, seconds: float) -> ClockState:
    """Move emulated time forward, frozen or running."""
    row = _locked_clock(session)
    if row.frozen_at is not None:
        state = ClockState(frozen_at=row.frozen_at + timedelta(seconds=seconds))
    else:
        state = ClockState(offset_seconds=row.offset_seconds + seconds)
    return _store(session, row, state)


def resume_clock(session: Session) -> ClockState:
    """Let a frozen clock run on from where it stands (a running clock is left alone)."""
    row = _locked_clock(session)
    if row.frozen_at is None:
        return ClockState(offset_seconds=row.offset_seconds)
    offset = (row.frozen_at - datetime.now(UTC)).total_seconds()
    return _store(session, row, ClockState(offset_seconds=offset))


def reset_clock(session: Session) -> ClockState:
    """Back to real time."""
    return _store(session, _locked_clock(session), REAL_TIME)


def change_clock(session: Session, action: str, at: datetime | None, seconds: float) -> ClockState:
    """Apply one validated clock change (`ClockChange`): freeze at `at`, advance by `seconds`,
    resume or reset. The caller commits (the HTTP view or the CLI command)."""
    if action == "freeze":
        assert at is not None  # noqa: S101 (the schema guarantees it)
        return freeze_clock(session, at)
    if action == "advance":
        return advance_clock(session, seconds)
    if action == "resume":
        return resume_clock(session)
    return reset_clock(session)


class EmulatedClock:
    """This process's copy of the clock."""

    def __init__(self, database: Database, feed: ChangeFeed) -> None:
        self._database = database
        self.snapshot: Snapshot[ClockState] = Snapshot(feed, DETAIL, self._load, REAL_TIME)

    def _load(self) -> ClockState:
        with self._database.read() as connection:
            return read_clock(connection)

    @property
    def state(self) -> ClockState:
        return self.snapshot.get()

    def now(self) -> datetime:
        return self.snapshot.get().now()


CLOCK = Slot[EmulatedClock]("tectonite.emulator.clock")


def now(app: Flask | None = None) -> datetime:
    """The emulated "now" (UTC) of `app` (default: the current app): the one clock for
    everything time-dependent in serving (ttl expiry, the feature cache, aggregation windows).

    Outside an app (or before the emulator is set up) it is real time.
    """
    try:
        clock = CLOCK.get(app)
    except (RuntimeError, KeyError):
        return datetime.now(UTC)
    return clock.now()

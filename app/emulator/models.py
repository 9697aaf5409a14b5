"""The emulator's tables: the clock (one row), fault rules, and the request journal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    CursorResult,
    DateTime,
    Double,
    Identity,
    Integer,
    Result,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class EmulatorClock(Base):
    """The emulated clock. No row (or offset 0, not frozen) means real time.

    Running: now = real time + `offset_seconds`. Frozen: now = `frozen_at`.
    """

    __tablename__ = "emulator_clock"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("frozen = (frozen_at IS NOT NULL)", name="frozen_has_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    offset_seconds: Mapped[float] = mapped_column(Double, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class FaultRule(Base):
    """One fault rule; `rule` holds its matching and effect fields as the API spells them.

    `remaining` counts down the hits a rule with `times` has left (atomically, so the count is
    exact across processes); `matched` counts the requests it matched (the draw index for a
    seeded probability).
    """

    __tablename__ = "emulator_faults"
    __table_args__ = (CheckConstraint("remaining IS NULL OR remaining >= 0", name="remaining"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB)
    remaining: Mapped[int | None] = mapped_column(BigInteger)
    matched: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class JournalEntry(Base):
    """One API request as the journal records it (never the key itself: its id only)."""

    __tablename__ = "emulator_journal"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    method: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    endpoint: Mapped[str | None] = mapped_column(Text)
    workspace: Mapped[str | None] = mapped_column(Text)
    feature_service: Mapped[str | None] = mapped_column(Text)
    api_key_id: Mapped[str | None] = mapped_column(Text)
    body: Mapped[Any | None] = mapped_column(JSONB)
    status: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Double)


class JournalCleared(Base):
    """When the journal was last cleared: entries of requests that ended before it stay hidden,
    even when a process writes them after the clear (its batch was still on the way)."""

    __tablename__ = "emulator_journal_cleared"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    cleared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def rowcount(result: Result[Any]) -> int:
    """Rows a DELETE/UPDATE touched."""
    assert isinstance(result, CursorResult)  # noqa: S101 (DML statements return one)
    return int(result.rowcount)

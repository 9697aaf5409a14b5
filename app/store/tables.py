"""The store's tables. Only `app.store` reads or writes them; `app.models` re-exports them so
the metadata (migrations, `create_all`) stays complete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Sequence, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class OnlineValue(Base):
    """The online store: per feature view and entity key, the newest row by event time.

    `entity_key` is the JSON array of the view's join-key values as strings, in join-key order
    (`["u1","m7"]`), under the "C" collation so a btree range scan serves prefix lookups for
    partial keys. `features` holds one JSON object {feature name: value} already in wire
    encoding (int64 as strings, whole floats without a fraction), stored as `json` text so a read
    decodes it once and numbers keep their exact spelling. Serving a whole feature service for
    one or ten entities is one indexed statement over the primary key.
    """

    __tablename__ = "online_values"

    feature_view_id: Mapped[int] = mapped_column(
        ForeignKey("feature_views.id", ondelete="CASCADE"), primary_key=True
    )
    entity_key: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    features: Mapped[dict[str, Any]] = mapped_column(JSON)


class AggregationTile(Base):
    """One tile of an aggregate view: per entity key and epoch-aligned tile start, the
    mergeable partial aggregates of the events in `[tile_start, tile_start + tile)`
    (`AggregationSpec.merge_into_tile`). Only tiles with events exist; a read takes at most one
    row per tile of its longest window, by a range scan over the primary key."""

    __tablename__ = "aggregation_tiles"

    feature_view_id: Mapped[int] = mapped_column(
        ForeignKey("feature_views.id", ondelete="CASCADE"), primary_key=True
    )
    entity_key: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    tile_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    partials: Mapped[dict[str, Any]] = mapped_column(JSONB)


class AggregationEvent(Base):
    """Every ingested event of an aggregate view (the columns its features aggregate), in
    every mode: continuous windows read their ragged ends from here, a tile whose event was
    replaced (continuous mode: same keys and timestamp) is rebuilt from here, and explain counts
    them. `sequence` (from `aggregation_event_sequence`) orders events ingested at the same
    instant: the later ingested is the more recent."""

    __tablename__ = "aggregation_events"

    feature_view_id: Mapped[int] = mapped_column(
        ForeignKey("feature_views.id", ondelete="CASCADE"), primary_key=True
    )
    entity_key: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSONB)


EVENT_SEQUENCE = Sequence("aggregation_event_sequence", metadata=Base.metadata)

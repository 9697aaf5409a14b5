"""Domain tables: workspaces and their definitions (the online store's are in `app.store`).

Types are stored as text in the Tecton SDK's spelling (`Int64`, `Array(String)`,
`Struct(a Int64, b String)`); `app.types` parses them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

import app.store.tables  # noqa: F401  (the store's tables complete this metadata)
from app.db import Base


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    live: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by every apply that changes something; serving caches compare against it.
    definitions_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Entity(Base):
    __tablename__ = "entities"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    join_keys: Mapped[list[EntityJoinKey]] = relationship(
        order_by="EntityJoinKey.position", cascade="all, delete-orphan", lazy="selectin"
    )


class EntityJoinKey(Base):
    __tablename__ = "entity_join_keys"
    __table_args__ = (
        UniqueConstraint("entity_id", "name"),
        CheckConstraint("type IN ('String', 'Int64')", name="join_key_type"),
    )

    entity_id: Mapped[int] = mapped_column(
        ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)


class PushSource(Base):
    __tablename__ = "push_sources"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    timestamp_field: Mapped[str] = mapped_column(Text)
    fields: Mapped[list[PushSourceField]] = relationship(
        order_by="PushSourceField.position", cascade="all, delete-orphan", lazy="selectin"
    )


class PushSourceField(Base):
    __tablename__ = "push_source_fields"
    __table_args__ = (UniqueConstraint("push_source_id", "name"),)

    push_source_id: Mapped[int] = mapped_column(
        ForeignKey("push_sources.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)


class FeatureView(Base):
    """A batch/stream feature view, a feature table, or a realtime feature view (`kind`)."""

    __tablename__ = "feature_views"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint(
            "kind IN ('batch', 'stream', 'table', 'realtime')", name="feature_view_kind"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default="{}")
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    # The push source that feeds a stream view (None for tables and realtime views).
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("push_sources.id", ondelete="RESTRICT")
    )
    ttl_seconds: Mapped[int | None] = mapped_column(BigInteger)  # None: values never expire
    cache_max_age_seconds: Mapped[int | None] = mapped_column(BigInteger)
    # Realtime views only: the transform's source text and the function to call in it.
    transform_source: Mapped[str | None] = mapped_column(Text)
    transform_function: Mapped[str | None] = mapped_column(Text)
    transform_file: Mapped[str | None] = mapped_column(Text)
    # Aggregate stream views only: `AggregationSpec.to_json()` (see app.aggregation).
    aggregation: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))

    entities: Mapped[list[FeatureViewEntity]] = relationship(
        order_by="FeatureViewEntity.position", cascade="all, delete-orphan", lazy="selectin"
    )
    features: Mapped[list[Feature]] = relationship(
        order_by="Feature.position", cascade="all, delete-orphan", lazy="selectin"
    )
    realtime_sources: Mapped[list[RealtimeSource]] = relationship(
        order_by="RealtimeSource.position",
        cascade="all, delete-orphan",
        lazy="selectin",
        foreign_keys="RealtimeSource.realtime_view_id",
    )


class FeatureViewEntity(Base):
    __tablename__ = "feature_view_entities"

    feature_view_id: Mapped[int] = mapped_column(
        ForeignKey("feature_views.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="RESTRICT"))


class Feature(Base):
    __tablename__ = "features"
    __table_args__ = (UniqueConstraint("feature_view_id", "name"),)

    feature_view_id: Mapped[int] = mapped_column(
        ForeignKey("feature_views.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default="{}")


class RealtimeSource(Base):
    """One input of a realtime view: the request context, or an upstream feature view."""

    __tablename__ = "realtime_sources"
    __table_args__ = (
        CheckConstraint("kind IN ('request', 'feature_view')", name="realtime_source_kind"),
        CheckConstraint(
            "(kind = 'request') = (feature_view_id IS NULL)", name="realtime_source_target"
        ),
    )

    realtime_view_id: Mapped[int] = mapped_column(
        ForeignKey("feature_views.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    # The request-context parameter name, for a request source.
    name: Mapped[str | None] = mapped_column(Text)
    # [{"name": ..., "type": ...}] for a request source.
    request_schema: Mapped[list[dict[str, str]] | None] = mapped_column(JSONB)
    feature_view_id: Mapped[int | None] = mapped_column(
        ForeignKey("feature_views.id", ondelete="RESTRICT")
    )


class FeatureService(Base):
    __tablename__ = "feature_services"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default="{}")
    online_serving_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    enable_online_caching: Mapped[bool] = mapped_column(Boolean, default=False)
    items: Mapped[list[FeatureServiceItem]] = relationship(
        order_by="FeatureServiceItem.position", cascade="all, delete-orphan", lazy="selectin"
    )


class FeatureServiceItem(Base):
    """One feature-view reference of a service: an optional feature subset, namespace, key map."""

    __tablename__ = "feature_service_items"

    feature_service_id: Mapped[int] = mapped_column(
        ForeignKey("feature_services.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    # RESTRICT: a view cannot be deleted while a service still uses it.
    feature_view_id: Mapped[int] = mapped_column(
        ForeignKey("feature_views.id", ondelete="RESTRICT")
    )
    features: Mapped[list[str] | None] = mapped_column(JSONB)  # None: all of the view's features
    namespace: Mapped[str | None] = mapped_column(Text)  # None: the view's name
    join_key_map: Mapped[dict[str, str] | None] = mapped_column(JSONB)

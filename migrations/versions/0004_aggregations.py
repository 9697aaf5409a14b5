"""aggregations: tiles of partial aggregates, raw events, and feature_views.aggregation

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "feature_views",
        sa.Column("aggregation", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    # Specs kept in transform_source before this column existed (stream views only).
    op.execute(
        "UPDATE feature_views SET aggregation = transform_source::jsonb, transform_source = NULL "
        "WHERE kind <> 'realtime' AND transform_source IS NOT NULL"
    )
    op.execute("CREATE SEQUENCE aggregation_event_sequence")
    op.create_table(
        "aggregation_tiles",
        sa.Column("feature_view_id", sa.Integer(), nullable=False),
        sa.Column("entity_key", sa.Text(collation="C"), nullable=False),
        sa.Column("tile_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("partials", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["feature_view_id"],
            ["feature_views.id"],
            name=op.f("fk_aggregation_tiles_feature_view_id_feature_views"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "feature_view_id", "entity_key", "tile_start", name=op.f("pk_aggregation_tiles")
        ),
    )
    op.create_table(
        "aggregation_events",
        sa.Column("feature_view_id", sa.Integer(), nullable=False),
        sa.Column("entity_key", sa.Text(collation="C"), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("values", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["feature_view_id"],
            ["feature_views.id"],
            name=op.f("fk_aggregation_events_feature_view_id_feature_views"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "feature_view_id",
            "entity_key",
            "event_time",
            "sequence",
            name=op.f("pk_aggregation_events"),
        ),
    )


def downgrade() -> None:
    op.drop_table("aggregation_events")
    op.drop_table("aggregation_tiles")
    op.execute("DROP SEQUENCE aggregation_event_sequence")
    op.execute(
        "UPDATE feature_views SET transform_source = aggregation::text "
        "WHERE aggregation IS NOT NULL"
    )
    op.drop_column("feature_views", "aggregation")

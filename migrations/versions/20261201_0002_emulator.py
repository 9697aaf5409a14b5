"""emulator: clock, fault rules, request journal (and when it was cleared)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emulator_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offset_seconds", sa.Double(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_emulator_clock_single_row")),
        sa.CheckConstraint(
            "frozen = (frozen_at IS NOT NULL)", name=op.f("ck_emulator_clock_frozen_has_time")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emulator_clock")),
    )
    op.create_table(
        "emulator_faults",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("rule", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=True),
        sa.Column("matched", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "remaining IS NULL OR remaining >= 0", name=op.f("ck_emulator_faults_remaining")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emulator_faults")),
    )
    op.create_table(
        "emulator_journal",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("workspace", sa.Text(), nullable=True),
        sa.Column("feature_service", sa.Text(), nullable=True),
        sa.Column("api_key_id", sa.Text(), nullable=True),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emulator_journal")),
    )
    op.create_table(
        "emulator_journal_cleared",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_emulator_journal_cleared_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emulator_journal_cleared")),
    )


def downgrade() -> None:
    op.drop_table("emulator_journal_cleared")
    op.drop_table("emulator_journal")
    op.drop_table("emulator_faults")
    op.drop_table("emulator_clock")

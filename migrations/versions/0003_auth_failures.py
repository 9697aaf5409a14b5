"""auth_failures: failed authentications counted across every server process

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client", "window_start", name=op.f("pk_auth_failures")),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("auth_failures")

"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 09:00:26.499445
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("definitions_version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("name", name=op.f("uq_workspaces_name")),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_entities_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_entities_workspace_id")),
    )
    op.create_table(
        "feature_services",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "tags", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("online_serving_enabled", sa.Boolean(), nullable=False),
        sa.Column("enable_online_caching", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_feature_services_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_services")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_feature_services_workspace_id")),
    )
    op.create_table(
        "push_sources",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("timestamp_field", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_push_sources_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_sources")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_push_sources_workspace_id")),
    )
    op.create_table(
        "entity_join_keys",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "type IN ('String', 'Int64')", name=op.f("ck_entity_join_keys_join_key_type")
        ),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["entities.id"],
            name=op.f("fk_entity_join_keys_entity_id_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entity_id", "position", name=op.f("pk_entity_join_keys")),
        sa.UniqueConstraint("entity_id", "name", name=op.f("uq_entity_join_keys_entity_id")),
    )
    op.create_table(
        "feature_views",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "tags", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("ttl_seconds", sa.BigInteger(), nullable=True),
        sa.Column("cache_max_age_seconds", sa.BigInteger(), nullable=True),
        sa.Column("transform_source", sa.Text(), nullable=True),
        sa.Column("transform_function", sa.Text(), nullable=True),
        sa.Column("transform_file", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('batch', 'stream', 'table', 'realtime')",
            name=op.f("ck_feature_views_feature_view_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["push_sources.id"],
            name=op.f("fk_feature_views_source_id_push_sources"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_feature_views_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_views")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_feature_views_workspace_id")),
    )
    op.create_table(
        "push_source_fields",
        sa.Column("push_source_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["push_source_id"],
            ["push_sources.id"],
            name=op.f("fk_push_source_fields_push_source_id_push_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("push_source_id", "position", name=op.f("pk_push_source_fields")),
        sa.UniqueConstraint(
            "push_source_id", "name", name=op.f("uq_push_source_fields_push_source_id")
        ),
    )
    op.create_table(
        "feature_service_items",
        sa.Column("feature_service_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("feature_view_id", sa.Integer(), nullable=False),
        sa.Column("features", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("namespace", sa.Text(), nullable=True),
        sa.Column("join_key_map", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["feature_service_id"],
            ["feature_services.id"],
            name=op.f("fk_feature_service_items_feature_service_id_feature_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feature_view_id"],
            ["feature_views.id"],
            name=op.f("fk_feature_service_items_feature_view_id_feature_views"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "feature_service_id", "position", name=op.f("pk_feature_service_items")
        ),
    )
    op.create_table(
        "feature_view_entities",
        sa.Column("feature_view_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["entities.id"],
            name=op.f("fk_feature_view_entities_entity_id_entities"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["feature_view_id"],
            ["feature_views.id"],
            name=op.f("fk_feature_view_entities_feature_view_id_feature_views"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "feature_view_id", "position", name=op.f("pk_feature_view_entities")
        ),
    )
    op.create_table(
        "features",
        sa.Column("feature_view_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "tags", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["feature_view_id"],
            ["feature_views.id"],
            name=op.f("fk_features_feature_view_id_feature_views"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("feature_view_id", "position", name=op.f("pk_features")),
        sa.UniqueConstraint("feature_view_id", "name", name=op.f("uq_features_feature_view_id")),
    )
    op.create_table(
        "online_values",
        sa.Column("feature_view_id", sa.Integer(), nullable=False),
        sa.Column("entity_key", sa.Text(collation="C"), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feature_view_id"],
            ["feature_views.id"],
            name=op.f("fk_online_values_feature_view_id_feature_views"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("feature_view_id", "entity_key", name=op.f("pk_online_values")),
    )
    op.create_table(
        "realtime_sources",
        sa.Column("realtime_view_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("request_schema", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("feature_view_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'request') = (feature_view_id IS NULL)",
            name=op.f("ck_realtime_sources_realtime_source_target"),
        ),
        sa.CheckConstraint(
            "kind IN ('request', 'feature_view')",
            name=op.f("ck_realtime_sources_realtime_source_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["feature_view_id"],
            ["feature_views.id"],
            name=op.f("fk_realtime_sources_feature_view_id_feature_views"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["realtime_view_id"],
            ["feature_views.id"],
            name=op.f("fk_realtime_sources_realtime_view_id_feature_views"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("realtime_view_id", "position", name=op.f("pk_realtime_sources")),
    )
    op.create_table(
        "auth_secrets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_auth_secrets")),
    )
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_accounts")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("service_account_id", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("obscured_key", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["service_accounts.id"],
            name=op.f("fk_api_keys_service_account_id_service_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(
        op.f("ix_api_keys_service_account_id"), "api_keys", ["service_account_id"], unique=False
    )
    op.create_table(
        "role_bindings",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("service_account_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("workspace", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role <> 'admin' OR workspace IS NULL",
            name=op.f("ck_role_bindings_admin_is_cluster_wide"),
        ),
        sa.CheckConstraint(
            "role IN ('viewer', 'consumer', 'editor', 'owner', 'admin')",
            name=op.f("ck_role_bindings_role_name"),
        ),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["service_accounts.id"],
            name=op.f("fk_role_bindings_service_account_id_service_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_bindings")),
        sa.UniqueConstraint(
            "service_account_id",
            "role",
            "workspace",
            name=op.f("uq_role_bindings_service_account_id"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        op.f("ix_role_bindings_service_account_id"),
        "role_bindings",
        ["service_account_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_role_bindings_service_account_id"), table_name="role_bindings")
    op.drop_table("role_bindings")
    op.drop_index(op.f("ix_api_keys_service_account_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("service_accounts")
    op.drop_table("auth_secrets")
    op.drop_table("realtime_sources")
    op.drop_table("online_values")
    op.drop_table("features")
    op.drop_table("feature_view_entities")
    op.drop_table("feature_service_items")
    op.drop_table("push_source_fields")
    op.drop_table("feature_views")
    op.drop_table("entity_join_keys")
    op.drop_table("push_sources")
    op.drop_table("feature_services")
    op.drop_table("entities")
    op.drop_table("workspaces")

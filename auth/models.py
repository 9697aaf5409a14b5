"""Tables for service accounts, their API keys and role bindings, on auth's own metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Alembic's recommended naming convention; `app.db` uses the same dictionary for its tables.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("viewer", "consumer", "editor", "owner", "admin")


class AuthBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuthSecret(AuthBase):
    """Server-wide secrets, e.g. the HMAC key for API-key hashes when TECTONITE_SECRET is unset."""

    __tablename__ = "auth_secrets"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ServiceAccount(AuthBase):
    __tablename__ = "service_accounts"

    id: Mapped[str] = mapped_column(Text, primary_key=True)  # 32 lowercase hex, like Tecton's
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(AuthBase):
    """An API key: only an HMAC of its secret is stored, never the key itself."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(Text, primary_key=True)  # public id, also inside the key
    service_account_id: Mapped[str] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    obscured_key: Mapped[str] = mapped_column(Text)  # "****abcd"
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RoleBinding(AuthBase):
    """A role held by a service account on one workspace, or on all of them (workspace NULL)."""

    __tablename__ = "role_bindings"
    __table_args__ = (
        UniqueConstraint(
            "service_account_id", "role", "workspace", postgresql_nulls_not_distinct=True
        ),
        CheckConstraint(
            "role IN ('viewer', 'consumer', 'editor', 'owner', 'admin')", name="role_name"
        ),
        CheckConstraint("role <> 'admin' OR workspace IS NULL", name="admin_is_cluster_wide"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    service_account_id: Mapped[str] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(Text)
    workspace: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuthFailure(AuthBase):
    """Failed authentications per client address and fixed window, shared by every process.

    UNLOGGED: a crash may forget recent failures, which only resets the throttle early.
    """

    __tablename__ = "auth_failures"
    __table_args__ = {"prefixes": ["UNLOGGED"]}  # noqa: RUF012  (SQLAlchemy's declaration)

    client: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)

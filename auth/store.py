"""Database access for keys, service accounts and role bindings.

Every function takes a SQLAlchemy `Session` (or, on the serving path, a `Connection`) and at most
flushes: the caller owns the transaction and commits it (CLI commands are the boundary).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from auth.errors import AuthAdminError
from auth.keys import (
    MalformedKey,
    NewKey,
    generate_key,
    hash_secret,
    new_id,
    parse_key,
    secret_matches,
)
from auth.models import ROLES, ApiKey, AuthFailure, AuthSecret, RoleBinding, ServiceAccount
from auth.permissions import ADMIN_ROLE

Executor = Session | Connection

# The auth_secrets row holding the generated HMAC key when TECTONITE_SECRET is unset.
HMAC_SECRET_NAME = "api_key_hmac"  # noqa: S105  (a row name, not a secret)
# last_used_at is written at most this often per key.
LAST_USED_RESOLUTION_SECONDS = 60


# --------------------------------------------------------------------------- the server secret


def load_server_secret(executor: Executor) -> str | None:
    """The generated HMAC key, or None if no key was ever created without TECTONITE_SECRET."""
    statement = select(AuthSecret.value).where(AuthSecret.name == HMAC_SECRET_NAME)
    return executor.execute(statement).scalar_one_or_none()


def ensure_server_secret(session: Session) -> str:
    """The generated HMAC key, generating it on first use (safe against concurrent callers)."""
    session.execute(
        insert(AuthSecret)
        .values(name=HMAC_SECRET_NAME, value=secrets.token_hex(32))
        .on_conflict_do_nothing(index_elements=[AuthSecret.name])
    )
    secret = load_server_secret(session)
    assert secret is not None  # noqa: S101  (inserted just above or by a concurrent writer)
    return secret


def server_secret(session: Session, configured: str | None) -> bytes:
    """The HMAC key: TECTONITE_SECRET when set, otherwise the one kept in the database."""
    return (configured or ensure_server_secret(session)).encode()


# --------------------------------------------------------------------------- service accounts


def create_service_account(
    session: Session, *, name: str, description: str = "", created_by: str
) -> ServiceAccount:
    account = ServiceAccount(
        id=new_id(), name=name, description=description, created_by=created_by, active=True
    )
    session.add(account)
    session.flush()
    return account


def get_service_account(session: Session, account_id: str) -> ServiceAccount | None:
    return session.get(ServiceAccount, account_id)


def list_service_accounts(session: Session) -> Sequence[ServiceAccount]:
    statement = select(ServiceAccount).order_by(ServiceAccount.created_at, ServiceAccount.id)
    return session.execute(statement).scalars().all()


def delete_service_account(session: Session, account_id: str) -> bool:
    """Delete the account with its keys and role bindings (ON DELETE CASCADE)."""
    statement = delete(ServiceAccount).where(ServiceAccount.id == account_id)
    return _deleted_any(session, statement.returning(ServiceAccount.id))


def set_service_account_active(session: Session, account_id: str, *, active: bool) -> bool:
    statement = (
        update(ServiceAccount)
        .where(ServiceAccount.id == account_id)
        .values(active=active)
        .returning(ServiceAccount.id)
    )
    return session.execute(statement).first() is not None


# --------------------------------------------------------------------------- API keys


def create_api_key(
    session: Session,
    server_secret: bytes,
    *,
    service_account_id: str,
    description: str,
    created_by: str,
    expires_at: datetime | None = None,
    fixed_key: str | None = None,
) -> tuple[ApiKey, NewKey]:
    """A new key for the account; the returned NewKey is the only place the key ever exists.

    `fixed_key` stores a key chosen beforehand (an init directory's keys.yaml) instead of a
    generated one; it must pass the format's checks (MalformedKey otherwise), and the caller
    makes sure its id is not taken."""
    if fixed_key is None:
        new_key = generate_key()
    else:
        parsed = parse_key(fixed_key)
        new_key = NewKey(key=fixed_key, key_id=parsed.key_id, secret=parsed.secret)
    api_key = ApiKey(
        id=new_key.key_id,
        service_account_id=service_account_id,
        secret_hash=hash_secret(server_secret, new_key.secret),
        obscured_key=new_key.obscured,
        description=description,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(api_key)
    session.flush()
    return api_key, new_key


def list_api_keys(session: Session) -> Sequence[ApiKey]:
    return session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).scalars().all()


def delete_api_key(session: Session, key_id: str) -> bool:
    return _deleted_any(session, delete(ApiKey).where(ApiKey.id == key_id).returning(ApiKey.id))


def find_api_key(
    session: Session, server_secret: bytes, key: str
) -> tuple[ApiKey, ServiceAccount] | None:
    """The stored key matching the full presented key (introspection), or None."""
    try:
        parsed = parse_key(key.strip())
    except MalformedKey:
        return None
    row = session.execute(
        select(ApiKey, ServiceAccount)
        .join(ServiceAccount, ServiceAccount.id == ApiKey.service_account_id)
        .where(ApiKey.id == parsed.key_id)
    ).first()
    if row is None or not secret_matches(server_secret, parsed.secret, row[0].secret_hash):
        return None
    return row[0], row[1]


# --------------------------------------------------------------------------- role bindings


def validate_binding(role: str, workspace: str | None) -> None:
    if role not in ROLES:
        raise AuthAdminError(f"Invalid role. Possible values are: {', '.join(ROLES)}")
    if role == ADMIN_ROLE and workspace is not None:
        raise AuthAdminError("'admin' is a cluster-wide role; it cannot be given per workspace")


def assign_role(session: Session, account_id: str, role: str, workspace: str | None) -> bool:
    """Grant `role` on `workspace` (None: all workspaces). False if it was already granted."""
    validate_binding(role, workspace)
    if get_service_account(session, account_id) is None:
        raise AuthAdminError(f"service account {account_id} not found")
    statement = (
        insert(RoleBinding)
        .values(service_account_id=account_id, role=role, workspace=workspace)
        .on_conflict_do_nothing()
        .returning(RoleBinding.id)
    )
    return session.execute(statement).first() is not None


def unassign_role(session: Session, account_id: str, role: str, workspace: str | None) -> bool:
    """Remove the binding; False if the account did not hold it."""
    validate_binding(role, workspace)
    scope = (
        RoleBinding.workspace.is_(None) if workspace is None else RoleBinding.workspace == workspace
    )
    statement = (
        delete(RoleBinding)
        .where(RoleBinding.service_account_id == account_id, RoleBinding.role == role, scope)
        .returning(RoleBinding.id)
    )
    return _deleted_any(session, statement)


def list_role_bindings(session: Session, account_id: str) -> Sequence[RoleBinding]:
    statement = (
        select(RoleBinding)
        .where(RoleBinding.service_account_id == account_id)
        .order_by(RoleBinding.workspace.nulls_first(), RoleBinding.role)
    )
    return session.execute(statement).scalars().all()


# --------------------------------------------------------------------------- the serving path


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """Everything needed to verify one key and authorize its requests, from one SELECT."""

    key_id: str
    secret_hash: bytes
    expires_at: datetime | None
    service_account_id: str
    name: str
    active: bool
    bindings: tuple[tuple[str, str | None], ...]


def load_key_record(executor: Executor, key_id: str) -> KeyRecord | None:
    """The key, its account and the account's role bindings: one round trip."""
    statement = (
        select(
            ApiKey.secret_hash,
            ApiKey.expires_at,
            ServiceAccount.id,
            ServiceAccount.name,
            ServiceAccount.active,
            RoleBinding.role,
            RoleBinding.workspace,
        )
        .join(ServiceAccount, ServiceAccount.id == ApiKey.service_account_id)
        .outerjoin(RoleBinding, RoleBinding.service_account_id == ServiceAccount.id)
        .where(ApiKey.id == key_id)
    )
    rows = executor.execute(statement).all()
    if not rows:
        return None
    first = rows[0]
    return KeyRecord(
        key_id=key_id,
        secret_hash=bytes(first.secret_hash),
        expires_at=first.expires_at,
        service_account_id=first.id,
        name=first.name,
        active=first.active,
        bindings=tuple((row.role, row.workspace) for row in rows if row.role is not None),
    )


def touch_last_used(executor: Executor, key_id: str) -> None:
    """Record use, skipping the write when it was recorded in the last minute."""
    executor.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None))
            | (
                ApiKey.last_used_at
                < func.now() - text(f"interval '{LAST_USED_RESOLUTION_SECONDS} seconds'")
            ),
        )
        .values(last_used_at=func.now())
    )


def load_key_ids(executor: Executor) -> frozenset[str]:
    """The ids of every stored key (so that unknown ids are refused without a lookup)."""
    return frozenset(executor.execute(select(ApiKey.id)).scalars())


# --------------------------------------------------------------------------- failure throttle

# Fixed windows per client, read as a sliding one: the failures of this window plus those of the
# previous one weighted by how much of it still lies within the last `window` seconds. The answer
# is that count and how many seconds this window still runs. PostgreSQL's clock, so every
# instance agrees.
_RECORD_FAILURE = text(
    """
    WITH bumped AS (
        INSERT INTO auth_failures AS f (client, window_start, failures)
        VALUES (
            :client,
            to_timestamp(floor(extract(epoch FROM clock_timestamp()) / :window) * :window),
            1
        )
        ON CONFLICT (client, window_start) DO UPDATE SET failures = f.failures + 1
        RETURNING f.failures, f.window_start
    ), elapsed AS (
        SELECT b.failures, b.window_start,
            extract(epoch FROM clock_timestamp()) - extract(epoch FROM b.window_start) AS seconds
        FROM bumped b
    )
    SELECT e.failures + coalesce(
            (SELECT p.failures FROM auth_failures p
             WHERE p.client = :client
               AND p.window_start = e.window_start - make_interval(secs => :window)),
            0) * greatest(0, 1 - e.seconds / :window),
        :window - e.seconds
    FROM elapsed e
    """
)


def record_auth_failure(
    executor: Executor, client: str, window_seconds: float
) -> tuple[float, float]:
    """Count one failed authentication of `client`: (recent failures, seconds this window runs)."""
    row = executor.execute(_RECORD_FAILURE, {"client": client, "window": window_seconds}).one()
    return float(row[0]), float(row[1])


def delete_old_auth_failures(executor: Executor, window_seconds: float) -> None:
    executor.execute(
        delete(AuthFailure).where(
            AuthFailure.window_start
            < func.clock_timestamp() - text(f"interval '{2 * window_seconds} seconds'")
        )
    )


def _deleted_any(session: Session, statement: object) -> bool:
    return session.execute(statement).first() is not None  # type: ignore[call-overload]  # a DML statement built by the caller

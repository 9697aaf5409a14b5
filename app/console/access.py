"""Who is signed in to the console, and what their roles let them see.

Sign-in verifies the key with the API's own authenticator (same checks, same throttle). The
session then holds the key id and a binding HMAC; every console request re-reads the key (one
SELECT), so revocation, deactivation and role changes apply to the very next page.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from flask import request, session

from app.console.session import SESSION_LIFETIME, ConsoleSecret
from app.db import get_database
from app.extensions import Slot
from app.security import get_authenticator
from auth.cache import CachedCredential
from auth.permissions import READ_FEATURES, VIEW_METADATA, Principal
from auth.store import load_key_record

CONSOLE_SECRET = Slot[ConsoleSecret]("tectonite.console.secret")
_KEY_ID = "key_id"
_BINDING = "key_binding"
_SIGNED_IN_AT = "signed_in_at"


def console_secret() -> ConsoleSecret:
    return CONSOLE_SECRET.get()


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in principal, with the questions the templates ask about it."""

    principal: Principal
    description: str

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    def sees(self, workspace: str) -> bool:
        """A workspace is shown to a key holding any role on it (every role can view metadata)."""
        return self.principal.allows(VIEW_METADATA, workspace)

    def reads(self, workspace: str) -> bool:
        """Feature values (samples, distributions, "try it") need the consumer role."""
        return self.principal.allows(READ_FEATURES, workspace)


def sign_in(key: str) -> Principal:
    """Verify `key` as the API would (raises AuthenticationFailed / TooManyFailures) and start
    a fresh session for it (a new CSRF token too: nothing survives from before sign-in)."""
    principal = get_authenticator().authenticate(
        f"Tecton-key {key}", request.remote_addr or "-", use_cache=False
    )
    with get_database().read() as connection:
        record = load_key_record(connection, principal.key_id)
    if record is None:  # deleted between the two reads
        raise LookupError(principal.key_id)
    session.clear()
    session[_KEY_ID] = principal.key_id
    session[_BINDING] = console_secret().key_binding(record.key_id, record.secret_hash)
    session[_SIGNED_IN_AT] = int(time.time())
    return principal


def sign_out() -> None:
    session.clear()


def load_signed_in() -> Viewer | None:
    """The session's key, still valid and with its current roles; None when signed out."""
    key_id = session.get(_KEY_ID)
    binding = session.get(_BINDING)
    signed_in_at = session.get(_SIGNED_IN_AT)
    if not isinstance(key_id, str) or not isinstance(binding, str):
        return None
    if not isinstance(signed_in_at, int) or time.time() - signed_in_at > (
        SESSION_LIFETIME.total_seconds()
    ):
        session.clear()
        return None
    with get_database().read() as connection:
        record = load_key_record(connection, key_id)
    if record is None or not _binding_matches(record.key_id, record.secret_hash, binding):
        session.clear()
        return None
    credential = CachedCredential.from_record(record, loaded_at=0.0)
    expired = credential.expires_at is not None and credential.expires_at.timestamp() <= time.time()
    if not credential.active or expired:
        session.clear()
        return None
    return Viewer(credential.principal, credential.principal.name)


def _binding_matches(key_id: str, secret_hash: bytes, presented: str) -> bool:
    expected = console_secret().key_binding(key_id, secret_hash)
    return hmac.compare_digest(expected.encode(), presented.encode())

"""Turning an `Authorization` header into a Principal, or a refusal. Framework-independent.

Order: parse the header and the key offline (bad shape or checksum → 401, no I/O) → the
per-process cache (hit: no database trip) → an id no stored key has is refused after a decoy
HMAC, with no database trip either, so probing ids costs what a wrong secret costs and reveals
nothing → on a miss one SELECT of key, account and bindings → HMAC of the presented secret
compared in constant time → account active, key not expired. Failures count towards the
client's throttle, shared by every process (429 past the limit). Nothing here logs the key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from auth.cache import CachedCredential, CredentialCache
from auth.errors import AuthenticationFailed, TooManyFailures
from auth.keys import MalformedKey, hash_secret, parse_key, secret_matches
from auth.permissions import Principal
from auth.store import (
    LAST_USED_RESOLUTION_SECONDS,
    load_key_ids,
    load_key_record,
    load_server_secret,
    touch_last_used,
)
from auth.throttle import SharedFailureThrottle

logger = logging.getLogger("tectonite.auth")

SCHEME = "tecton-key"
# Hashed when the key id is unknown, so that case costs about as much as a wrong secret.
_DECOY_SERVER_SECRET = b"tectonite-decoy"
_DECOY_SECRET = "0" * 43

Connect = Callable[[], AbstractContextManager[Connection]]


def key_from_header(authorization: str | None) -> str:
    """The key in `Tecton-key <key>` (scheme case-insensitive), or AuthenticationFailed."""
    if not authorization:
        raise AuthenticationFailed("no Authorization header")
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != SCHEME:
        raise AuthenticationFailed("not the Tecton-key scheme")
    key = key.strip()
    if not key:
        raise AuthenticationFailed("empty key")
    return key


class Authenticator:
    """Verifies keys for one process; shared by its request threads."""

    def __init__(
        self,
        *,
        connect: Connect,
        configured_secret: str | None,
        cache: CredentialCache | None = None,
        throttle: SharedFailureThrottle | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect = connect
        self.cache = cache or CredentialCache(clock=clock)
        self.throttle = throttle or SharedFailureThrottle(connect=connect, clock=clock)
        self.clock = clock
        self._server_secret = configured_secret.encode() if configured_secret else None
        self._use_recorded_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(
        self, authorization: str | None, client: str, *, use_cache: bool = True
    ) -> Principal:
        """The principal for this header; AuthenticationFailed (401) or TooManyFailures (429)."""
        try:
            principal = self._verify(authorization, use_cache=use_cache)
        except AuthenticationFailed as failure:
            retry_after = self.throttle.record_failure(client)
            logger.debug("authentication failed: %s", failure.reason)
            if retry_after is not None:
                raise TooManyFailures(retry_after) from None
            raise
        self._record_use(principal.key_id)
        return principal

    def _verify(self, authorization: str | None, *, use_cache: bool) -> Principal:
        try:
            parsed = parse_key(key_from_header(authorization))
        except MalformedKey as exc:
            raise AuthenticationFailed(f"malformed key ({exc})") from None
        credential = self.cache.get(parsed.key_id) if use_cache else None
        if credential is None and use_cache and not self._may_exist(parsed.key_id):
            hash_secret(_DECOY_SERVER_SECRET, _DECOY_SECRET)
            raise AuthenticationFailed(f"unknown key id {parsed.key_id}")
        if credential is None:
            credential = self._load(parsed.key_id, use_cache=use_cache)
        if self._server_secret is None or not secret_matches(
            self._server_secret, parsed.secret, credential.secret_hash
        ):
            raise AuthenticationFailed(f"wrong secret for key id {parsed.key_id}")
        if not credential.active:
            raise AuthenticationFailed(f"service account of key id {parsed.key_id} is inactive")
        if credential.expires_at is not None and credential.expires_at <= datetime.now(UTC):
            raise AuthenticationFailed(f"key id {parsed.key_id} has expired")
        return credential.principal

    def _may_exist(self, key_id: str) -> bool:
        """Whether a stored key has this id, from the cache's list of ids (reloaded at most every
        KNOWN_IDS_REFRESH_SECONDS for an id it lacks, so a key created a moment ago, whose change
        notification has not arrived yet, still works at once)."""
        known = self.cache.known_ids(self.clock())
        if known.ids is not None and key_id in known.ids:
            return True
        if not known.stale:
            return False
        generation = self.cache.generation
        with self.connect() as connection:
            ids = load_key_ids(connection)
        self.cache.put_known_ids(ids, self.clock(), generation)
        return key_id in ids

    def _load(self, key_id: str, *, use_cache: bool) -> CachedCredential:
        generation = self.cache.generation
        with self.connect() as connection:
            if self._server_secret is None:
                stored = load_server_secret(connection)
                self._server_secret = stored.encode() if stored else None
            record = load_key_record(connection, key_id) if self._server_secret else None
        if record is None:
            hash_secret(_DECOY_SERVER_SECRET, _DECOY_SECRET)
            raise AuthenticationFailed(f"unknown key id {key_id}")
        credential = CachedCredential.from_record(record, loaded_at=self.clock())
        if use_cache:
            self.cache.put(key_id, credential, generation)
        return credential

    def _record_use(self, key_id: str) -> None:
        """Write last_used_at at most once a minute per key in this process."""
        now = self.clock()
        with self._lock:
            recorded_at = self._use_recorded_at.get(key_id)
            if recorded_at is not None and now - recorded_at < LAST_USED_RESOLUTION_SECONDS:
                return
            if len(self._use_recorded_at) >= self.cache.max_entries:
                self._use_recorded_at.clear()
            self._use_recorded_at[key_id] = now
        try:
            with self.connect() as connection:
                touch_last_used(connection, key_id)
        except SQLAlchemyError as exc:  # bookkeeping only: never fail the request for it
            logger.warning("could not record last use of key id %s: %s", key_id, type(exc).__name__)

"""The per-process cache of verified keys, so that a request's auth check needs no database trip.

An entry holds the key's stored hash, expiry and account state with the principal and its
grants. The presented secret is still checked (HMAC + constant-time comparison) on every request.
Entries are dropped all at once by `invalidate()`, which the web glue subscribes to the "auth"
change topic (LISTEN/NOTIFY), so revocations and role changes reach every process at once.
A generation counter stops a lookup that raced with an invalidation from storing stale data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from auth.permissions import Principal, grants_from_bindings
from auth.store import KeyRecord

# A safety net only: invalidation normally arrives within milliseconds.
MAX_AGE_SECONDS = 60.0
MAX_ENTRIES = 10_000
# An id missing from the list of known ids reloads the list at most this often.
KNOWN_IDS_REFRESH_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class KnownIds:
    ids: frozenset[str] | None  # None: not loaded since the last invalidation
    stale: bool  # may be reloaded now


@dataclass(frozen=True, slots=True)
class CachedCredential:
    secret_hash: bytes
    expires_at: datetime | None
    active: bool
    principal: Principal
    loaded_at: float

    @classmethod
    def from_record(cls, record: KeyRecord, *, loaded_at: float) -> CachedCredential:
        everywhere, per_workspace = grants_from_bindings(record.bindings)
        principal = Principal(
            key_id=record.key_id,
            service_account_id=record.service_account_id,
            name=record.name,
            everywhere=everywhere,
            per_workspace=per_workspace,
        )
        return cls(
            secret_hash=record.secret_hash,
            expires_at=record.expires_at,
            active=record.active,
            principal=principal,
            loaded_at=loaded_at,
        )


class CredentialCache:
    """key id → CachedCredential, safe to share between a worker's threads."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._entries: dict[str, CachedCredential] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._known_ids: frozenset[str] | None = None
        self._known_ids_loaded_at = 0.0

    @property
    def generation(self) -> int:
        """Read this before a database lookup and hand it to `put`."""
        return self._generation

    def get(self, key_id: str) -> CachedCredential | None:
        entry = self._entries.get(key_id)
        if entry is not None and self.clock() - entry.loaded_at > self.max_age_seconds:
            return None
        return entry

    def put(self, key_id: str, credential: CachedCredential, generation: int) -> bool:
        """Store unless an invalidation happened since `generation` was read."""
        with self._lock:
            if generation != self._generation:
                return False
            if len(self._entries) >= self.max_entries and key_id not in self._entries:
                self._entries.clear()
            self._entries[key_id] = credential
            return True

    def known_ids(self, now: float) -> KnownIds:
        """The ids of every stored key as last loaded, and whether they may be reloaded now."""
        ids = self._known_ids
        stale = ids is None or now - self._known_ids_loaded_at >= KNOWN_IDS_REFRESH_SECONDS
        return KnownIds(ids, stale)

    def put_known_ids(self, ids: frozenset[str], now: float, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._known_ids = ids
                self._known_ids_loaded_at = now

    def invalidate(self, _detail: str = "") -> None:
        """Forget everything (a key, account or role binding changed somewhere)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._known_ids = None

    def __len__(self) -> int:
        return len(self._entries)

"""The serving path's per-app state: resolved services, Tecton's feature cache, compiled
transforms and the threads they run on. `serving.init_app` creates one `ServingState` per app
(`SERVING.get()`). Every cache here is bounded (README, "Reliability")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.changes import DEFINITIONS_TOPIC, ChangeFeed, WorkspaceCache
from app.extensions import Slot
from app.lru import LruDict
from app.repo.transforms import TransformCache
from app.serving.model import ResolvedService, resolve_service
from app.serving.statuses import StoredStatus
from app.serving.transform_pool import TransformPool

# (workspace, service, namespace, entity key)
FeatureCacheKey = tuple[str, str, str, str]

# Per-process bounds (README, "Reliability"). Resolved services are few and worth keeping; names
# nobody defined are remembered apart, so a flood of them never pushes a real service out.
MAX_SERVICES = 4096
MAX_UNKNOWN_NAMES = 1024
# Tecton's feature-service cache, per process: entries (one per view and entity) beyond this
# drop the least recently used.
MAX_FEATURE_CACHE_ENTRIES = 10_000

_ABSENT = object()


class ServiceCache(WorkspaceCache):
    """Resolved services, dropped when their workspace's definitions change; names that resolve
    to nothing are kept too (bounded apart), so asking again for one costs no lookup."""

    def __init__(
        self,
        feed: ChangeFeed,
        *,
        max_services: int = MAX_SERVICES,
        max_unknown: int = MAX_UNKNOWN_NAMES,
    ) -> None:
        super().__init__(feed, DEFINITIONS_TOPIC, max_entries=max_services)
        self.unknown: LruDict[tuple[str, ...], None] = LruDict(max_unknown)

    def _stores(self) -> tuple[LruDict[tuple[str, ...], Any], ...]:
        return (self.entries, self.unknown)

    def get(
        self,
        sessions: Callable[[], Session],
        workspace: str,
        service: str,
        resolve: Callable[[Session, str, str], ResolvedService | None] = resolve_service,
        kind: str = "service",
    ) -> ResolvedService | None:
        """The resolved service (`kind` tells apart what `resolve` builds: a service, or a view
        served as one). On a cache miss it is read on a short session of its own (`sessions()`,
        closed at once), so a serving request never holds a pooled connection while it reads
        the store or reloads other state (holding one while waiting for a second could exhaust
        the pool with every thread waiting), and definitions are always read on the primary."""
        key = (workspace, service) if kind == "service" else (workspace, service, kind)
        if self.feed.trustworthy():
            with self.lock:
                found = self.entries.get(key, _ABSENT)
                if found is not _ABSENT:
                    self.entries.touch(key)
                    return found  # type: ignore[no-any-return]  # entries hold only these
                if key in self.unknown:
                    self.unknown.touch(key)
                    return None
        generation = self.generation
        with sessions() as session:
            resolved = resolve(session, workspace, service)
        if self.feed.trustworthy():
            with self.lock:
                if generation == self.generation:
                    if resolved is None:
                        self.unknown[key] = None
                    else:
                        self.entries[key] = resolved
        return resolved


@dataclass(frozen=True, slots=True)
class FeatureCacheEntry:
    expires_at: datetime  # emulated time
    values: list[Any]
    status: StoredStatus
    stored_at: datetime  # emulated time


class FeatureCache(WorkspaceCache):
    """Tecton's feature-service cache: per (workspace, service, namespace, entity) values, kept
    for the view's `cache_max_age`. Realtime results are never cached."""

    def __init__(self, feed: ChangeFeed, *, max_entries: int = MAX_FEATURE_CACHE_ENTRIES) -> None:
        super().__init__(feed, DEFINITIONS_TOPIC, max_entries=max_entries)

    def get(self, key: FeatureCacheKey, now: datetime) -> tuple[list[Any], StoredStatus] | None:
        """The entry for `key` unless it expired by `now` (the emulated clock)."""
        with self.lock:
            entry: FeatureCacheEntry | None = self.entries.get(key)
            if entry is None or entry.expires_at < now:
                return None
            self.entries.touch(key)
        return entry.values, entry.status

    def peek(self, key: FeatureCacheKey) -> FeatureCacheEntry | None:
        """The entry for `key`, expired or not (explain)."""
        with self.lock:
            entry: FeatureCacheEntry | None = self.entries.get(key)
        return entry

    def put(
        self,
        key: FeatureCacheKey,
        max_age: float,
        values: list[Any],
        status: StoredStatus,
        now: datetime,
    ) -> None:
        """Kept until `now + max_age` on the emulated clock."""
        with self.lock:
            self.entries[key] = FeatureCacheEntry(
                now + timedelta(seconds=max_age), values, status, now
            )


@dataclass(frozen=True)
class ServingState:
    services: ServiceCache
    features: FeatureCache
    transforms: TransformCache
    pool: TransformPool  # where realtime transforms run (`app.serving.transform_pool`)

    @classmethod
    def create(cls, feed: ChangeFeed, *, request_threads: int = 8) -> ServingState:
        """`request_threads`: the process's request threads. Each waits on at most one job, and
        as many again may be held by transforms that ignore their deadline."""
        return cls(
            ServiceCache(feed),
            FeatureCache(feed),
            TransformCache(),
            TransformPool(max_threads=2 * request_threads),
        )


SERVING = Slot[ServingState]("tectonite.serving")

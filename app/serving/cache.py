"""The serving path's per-app state: resolved services, Tecton's feature cache, compiled
transforms and the threads they run on. `serving.init_app` creates one `ServingState` per app
(`SERVING.get()`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.changes import DEFINITIONS_TOPIC, ChangeFeed, WorkspaceCache
from app.extensions import Slot
from app.repo.transforms import TransformCache
from app.serving.model import ResolvedService, resolve_service
from app.serving.statuses import StoredStatus
from app.serving.transform_pool import TransformPool

# (workspace, service, namespace, entity key)
FeatureCacheKey = tuple[str, str, str, str]


class ServiceCache(WorkspaceCache):
    """Resolved services, dropped when their workspace's definitions change."""

    def __init__(self, feed: ChangeFeed) -> None:
        super().__init__(feed, DEFINITIONS_TOPIC)

    def get(
        self, session: Session | Callable[[], Session], workspace: str, service: str
    ) -> ResolvedService | None:
        """The resolved service; `session` may be a factory, called only on a cache miss."""
        key = (workspace, service)
        if self.feed.trustworthy():
            try:
                return self.entries[key]  # type: ignore[no-any-return]  # entries hold only these
            except KeyError:
                pass
        generation = self.generation
        if not isinstance(session, Session):
            session = session()
        resolved = resolve_service(session, workspace, service)
        if self.feed.trustworthy():
            with self.lock:
                if generation == self.generation:
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

    def __init__(self, feed: ChangeFeed) -> None:
        super().__init__(feed, DEFINITIONS_TOPIC)

    def get(self, key: FeatureCacheKey, now: datetime) -> tuple[list[Any], StoredStatus] | None:
        """The entry for `key` unless it expired by `now` (the emulated clock)."""
        entry: FeatureCacheEntry | None = self.entries.get(key)
        if entry is None or entry.expires_at < now:
            return None
        return entry.values, entry.status

    def peek(self, key: FeatureCacheKey) -> FeatureCacheEntry | None:
        """The entry for `key`, expired or not (explain)."""
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

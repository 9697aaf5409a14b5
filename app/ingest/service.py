"""What ingest needs from the definitions: the views a push source feeds (cached per app, per
workspace version) and the target of a bulk load. Functions here only read; nothing commits."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.aggregation import AggregationSpec, spec_from_stored
from app.ingest.schemas import check_columns, event_time, key_converter, native_converter
from app.models import Entity, FeatureView, PushSource, Workspace
from app.repo.state import find_workspace
from app.store import EventRow, ValueRow, entity_key, features_json
from app.types import FeatureType, ValueTypeError, decode_value, parse_type

TTL_MESSAGE = "timestamp value is outside of the serving TTL defined for Feature View {view}"


@dataclass(frozen=True, slots=True)
class TargetView:
    """What a writer needs to know about one feature view: its keys, features and ttl."""

    id: int
    name: str
    workspace: str
    join_keys: tuple[tuple[str, str], ...]  # (name, "String" | "Int64"), in key order
    features: tuple[tuple[str, FeatureType], ...]
    ttl_seconds: int | None
    aggregation: AggregationSpec | None = None  # an aggregate view: it takes events
    # An aggregate view's push source: its columns (besides the timestamp) and timestamp field.
    source_columns: tuple[tuple[str, FeatureType], ...] = ()
    source_timestamp: str | None = None

    @property
    def aggregated_columns(self) -> tuple[str, ...]:
        """The source columns an aggregate view's features read."""
        if self.aggregation is None:
            return ()
        return tuple(sorted({f.column for f in self.aggregation.features}))

    @property
    def public_id(self) -> str:
        """A stable 32-lowercase-hex id for `featureViewId`.

        The BLAKE2b-128 digest of `<workspace>/<view>`: it survives re-applies and restarts, and
        is the same on every server process, without storing anything extra.
        """
        name = f"{self.workspace}/{self.name}".encode()
        return hashlib.blake2b(name, digest_size=16).hexdigest()


def load_target_views(
    session: Session, workspace: str, views: Sequence[FeatureView]
) -> list[TargetView]:
    """`TargetView`s for `views` (all of one workspace), with their entities' join keys."""
    entity_ids = {link.entity_id for view in views for link in view.entities}
    entities = {
        entity.id: entity
        for entity in session.scalars(select(Entity).where(Entity.id.in_(entity_ids)))
    }
    return [
        TargetView(
            id=view.id,
            name=view.name,
            workspace=workspace,
            join_keys=tuple(
                (key.name, key.type)
                for link in view.entities
                for key in entities[link.entity_id].join_keys
            ),
            features=tuple((f.name, parse_type(f.type)) for f in view.features),
            ttl_seconds=view.ttl_seconds,
            aggregation=spec_from_stored(view.aggregation),
        )
        for view in views
    ]


# --------------------------------------------------------------------------- bulk loads


class BulkTargetError(Exception):
    """The bulk load's workspace or view does not exist, or the view stores nothing."""


def bulk_target(session: Session, workspace: str, view_name: str) -> TargetView:
    """The view a bulk load writes into; BulkTargetError says why there is none."""
    stored_workspace = find_workspace(session, workspace)
    if stored_workspace is None:
        raise BulkTargetError(f'workspace "{workspace}" does not exist')
    view = session.scalars(
        select(FeatureView).where(
            FeatureView.workspace_id == stored_workspace.id, FeatureView.name == view_name
        )
    ).one_or_none()
    if view is None:
        raise BulkTargetError(
            f'feature view "{view_name}" does not exist in workspace "{workspace}"'
        )
    if view.kind == "realtime":
        raise BulkTargetError(
            f'"{view_name}" is a realtime feature view: it computes values, stores none'
        )
    target = load_target_views(session, workspace, [view])[0]
    if target.aggregation is None or view.source_id is None:
        return target
    source = session.get(PushSource, view.source_id)
    assert source is not None  # noqa: S101 (a foreign key)
    keys = {name for name, _ in target.join_keys}
    return replace(
        target,
        source_columns=tuple(
            (f.name, parse_type(f.type))
            for f in source.fields
            if f.name != source.timestamp_field and f.name not in keys
        ),
        source_timestamp=source.timestamp_field,
    )


# --------------------------------------------------------------------------- Stream Ingest


class UnknownSource(LookupError):
    """A push source of the request is unknown, or feeds no online view; `message` is the 404's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class SourcePlan:
    """One push source of a request: its schema, converters and the views it feeds."""

    name: str
    timestamp_field: str
    columns: list[str]
    converters: dict[str, Callable[[Any], Any]]
    key_converters: dict[str, Callable[[Any], str]]
    views: list[TargetView]
    column_types: dict[str, FeatureType] = field(default_factory=dict)

    def convert(
        self,
        index: int,
        record: dict[str, Any],
        now: datetime,
        rows: list[ValueRow],
        errors: list[dict[str, str]],
        events: dict[int, list[EventRow]] | None = None,
    ) -> None:
        """Append the record's rows (one per view) to `rows` (aggregate views: its event to
        `events[view id]`), or its problems to `errors`."""
        try:
            problem = check_columns(record, self.columns, allow_missing=set())
            if problem is not None:
                raise ValueTypeError(problem)
            timestamp, wire, keys = self._values(record)
        except ValueTypeError as exc:
            for view in self.views:
                errors.append(self._error(view, f"record {index}: {exc}"))
            if not self.views:
                errors.append(self._error(None, f"record {index}: {exc}"))
            return
        for view in self.views:
            if view.aggregation is not None:
                if view.aggregation.is_past_ttl(timestamp, now):
                    errors.append(self._error(view, TTL_MESSAGE.format(view=view.name)))
                    continue
                if events is not None:
                    key = entity_key([keys[name] for name, _ in view.join_keys])
                    values = {
                        c: decode_value(self.column_types[c], wire[c])
                        for c in view.aggregated_columns
                    }
                    events.setdefault(view.id, []).append(EventRow(key, timestamp, values))
                continue
            if view.ttl_seconds is not None and timestamp < now - timedelta(
                seconds=view.ttl_seconds
            ):
                errors.append(self._error(view, TTL_MESSAGE.format(view=view.name)))
                continue
            rows.append(
                ValueRow(
                    view.id,
                    entity_key([keys[name] for name, _ in view.join_keys]),
                    timestamp,
                    features_json({name: wire[name] for name, _ in view.features}),
                )
            )

    def _error(self, view: TargetView | None, message: str) -> dict[str, str]:
        """A record error; without a view (a source no online view subscribes to, dry run),
        it names the push source only."""
        error = {"featureViewName": view.name} if view is not None else {}
        error.update(
            pushSourceName=self.name,
            errorType="TectonObjectValidationError",
            errorMessage=message,
        )
        return error

    def _values(self, record: dict[str, Any]) -> tuple[datetime, dict[str, Any], dict[str, str]]:
        column = self.timestamp_field
        try:
            timestamp = event_time(record[column])
            wire = {}
            for column, convert in self.converters.items():
                wire[column] = convert(record[column])
            keys = {}
            for column, convert_key in self.key_converters.items():
                keys[column] = convert_key(record[column])
        except ValueTypeError as exc:
            raise ValueTypeError(f"column `{column}`: {exc}") from None
        return timestamp, wire, keys


class PlanCache:
    """(workspace id, definitions version, push source) → plan, per app.

    Every apply that changes a workspace bumps its version in the same transaction, so a cached
    plan is never stale; ids are never reused. Bounded by clearing: plans are cheap to rebuild.
    """

    def __init__(self, max_plans: int = 1024) -> None:
        self.max_plans = max_plans
        self._plans: dict[tuple[int, int, str], SourcePlan] = {}
        self._lock = threading.Lock()

    def plans(
        self, session: Session, workspace: Workspace, names: list[str], *, require_views: bool
    ) -> list[SourcePlan]:
        """The requested push sources' plans; UnknownSource when one is unknown, or (with
        `require_views`: a write, not a dry run) feeds no online view."""
        version = (workspace.id, workspace.definitions_version)
        cached = [self._plans.get((*version, name)) for name in names]
        plans = [plan for plan in cached if plan is not None]
        if len(plans) != len(names):
            plans = load_plans(session, workspace, names)
            with self._lock:
                if len(self._plans) >= self.max_plans:
                    self._plans.clear()
                for plan in plans:
                    self._plans[(*version, plan.name)] = plan
        if require_views:
            for plan in plans:
                if not plan.views:
                    raise UnknownSource(
                        f"No online stream feature view in workspace `{workspace.name}` is "
                        f"subscribed to push source `{plan.name}`."
                    )
        return plans


def load_plans(session: Session, workspace: Workspace, names: list[str]) -> list[SourcePlan]:
    if not names:
        return []
    sources = {
        source.name: source
        for source in session.scalars(
            select(PushSource).where(
                PushSource.workspace_id == workspace.id, PushSource.name.in_(names)
            )
        )
    }
    views_by_source: dict[int, list[FeatureView]] = {}
    for view in session.scalars(
        select(FeatureView)
        .where(
            FeatureView.workspace_id == workspace.id,
            FeatureView.source_id.in_([s.id for s in sources.values()]),
            FeatureView.online.is_(True),
        )
        .order_by(FeatureView.name)
    ):
        views_by_source.setdefault(view.source_id or 0, []).append(view)

    plans = []
    for name in names:
        source = sources.get(name)
        if source is None:
            raise UnknownSource(f"Push source `{name}` not found in workspace `{workspace.name}`.")
        # A source no online view subscribes to has an empty plan: a dry run still checks its
        # records against the source's schema; a write is refused (`PlanCache.plans`).
        targets = load_target_views(session, workspace.name, views_by_source.get(source.id, []))
        plans.append(
            SourcePlan(
                name=name,
                timestamp_field=source.timestamp_field,
                columns=[f.name for f in source.fields],
                converters={
                    f.name: native_converter(parse_type(f.type))
                    for f in source.fields
                    if f.name != source.timestamp_field
                },
                key_converters={
                    key: key_converter(key_type, text=False)
                    for view in targets
                    for key, key_type in view.join_keys
                },
                views=targets,
                column_types={f.name: parse_type(f.type) for f in source.fields},
            )
        )
    return plans

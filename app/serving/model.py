"""A feature service resolved for serving: output names, types and order, join keys, request
context keys, and the store reads and transforms that produce the values.

`resolve_service` builds it from the stored definitions (a few queries); the app's
`ServiceCache` (`app.serving.cache`) keeps it and drops a workspace's entries when its
definitions change, so the serving path looks nothing up per request.

Order (Tecton's): realtime views first, alphabetical by namespace, their features in declared
order; then the other views alphabetical by namespace, their features alphabetical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.aggregation import AggregationSpec, spec_from_stored
from app.models import Entity, FeatureService, FeatureView, Workspace
from app.types import FeatureType, parse_type


@dataclass(frozen=True, slots=True)
class NameAndType:
    name: str
    type: FeatureType
    data_type: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutputFeature:
    """One feature of the response: `name` is `<namespace>.<feature>`."""

    name: str
    feature: str
    type: FeatureType
    data_type: dict[str, Any]
    description: str | None
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoreRead:
    """One online-store lookup: a view, keyed by request join keys (in the view's key order)."""

    feature_view_id: int
    view_name: str
    key_names: tuple[str, ...]  # request join-key names, in the view's join-key order
    ttl_seconds: int | None
    feature_types: dict[str, FeatureType]  # every declared feature (inputs of transforms)
    aggregation: AggregationSpec | None = None  # an aggregate view: computed from its tiles

    @property
    def count_features(self) -> frozenset[str]:
        """The aggregate features `coerceNullCountsToZero` applies to."""
        if self.aggregation is None:
            return frozenset()
        return frozenset(f.name for f in self.aggregation.features if f.function.is_count)


@dataclass(frozen=True, slots=True)
class ViewOutput:
    read: int  # index into ResolvedService.reads
    namespace: str
    features: tuple[OutputFeature, ...]  # alphabetical
    cache_max_age_seconds: int | None


@dataclass(frozen=True, slots=True)
class RequestInput:
    """A realtime view's request source: the request-context keys it takes."""

    fields: tuple[NameAndType, ...]


@dataclass(frozen=True, slots=True)
class StoredInput:
    """A realtime view's feature-view source: the values of one store read."""

    read: int  # index into ResolvedService.reads


RealtimeInput = RequestInput | StoredInput


@dataclass(frozen=True, slots=True)
class RealtimeOutput:
    view_name: str
    namespace: str
    features: tuple[OutputFeature, ...]  # declared order
    inputs: tuple[RealtimeInput, ...]
    transform_source: str
    transform_function: str


@dataclass(frozen=True, slots=True)
class ResolvedService:
    workspace: str
    name: str
    servable: bool  # live workspace and online_serving_enabled
    enable_online_caching: bool
    join_keys: tuple[NameAndType, ...]  # order of first appearance in the service
    request_context_keys: tuple[NameAndType, ...]
    features: tuple[OutputFeature, ...]  # response order
    reads: tuple[StoreRead, ...]
    realtime: tuple[RealtimeOutput, ...]  # response order
    views: tuple[ViewOutput, ...]  # response order, after the realtime ones


def _name_and_type(name: str, spelling: str) -> NameAndType:
    parsed = parse_type(spelling)
    return NameAndType(name, parsed, parsed.data_type())


def resolve_service(
    session: Session, workspace_name: str, service_name: str
) -> ResolvedService | None:
    """Build the serving schema of a service from the database; None when it does not exist."""
    row = session.execute(
        select(Workspace, FeatureService)
        .join(FeatureService, FeatureService.workspace_id == Workspace.id)
        .where(Workspace.name == workspace_name, FeatureService.name == service_name)
    ).one_or_none()
    if row is None:
        return None
    workspace, service = row
    builder = _Builder.of(session, workspace)
    for item in service.items:
        builder.add(item.feature_view_id, item.features, item.namespace, item.join_key_map or {})
    return builder.resolved(
        workspace.name,
        service.name,
        servable=workspace.live and service.online_serving_enabled,
        enable_online_caching=service.enable_online_caching,
    )


def resolve_view(session: Session, workspace_name: str, view_name: str) -> ResolvedService | None:
    """One feature view served as a service of just that view (the `featureViewName` locator,
    which the SDK's `FeatureView.get_online_features` uses): its features named
    `<view>.<feature>`, servable when the workspace is live and the view online. None when the
    view does not exist."""
    row = session.execute(
        select(Workspace, FeatureView)
        .join(FeatureView, FeatureView.workspace_id == Workspace.id)
        .where(Workspace.name == workspace_name, FeatureView.name == view_name)
    ).one_or_none()
    if row is None:
        return None
    workspace, view = row
    builder = _Builder.of(session, workspace)
    builder.add(view.id, None, None, {})
    return builder.resolved(
        workspace.name,
        view.name,
        servable=workspace.live and (view.online or view.kind == "realtime"),
        enable_online_caching=False,
    )


class _Builder:
    @classmethod
    def of(cls, session: Session, workspace: Workspace) -> _Builder:
        """A builder over every view and entity of `workspace`."""
        views = {
            v.id: v
            for v in session.scalars(
                select(FeatureView).where(FeatureView.workspace_id == workspace.id)
            )
        }
        entities = {
            e.id: e
            for e in session.scalars(select(Entity).where(Entity.workspace_id == workspace.id))
        }
        return cls(views, entities)

    def resolved(
        self, workspace: str, name: str, *, servable: bool, enable_online_caching: bool
    ) -> ResolvedService:
        """The service built so far, in Tecton's response order."""
        realtime = tuple(sorted(self.realtime, key=lambda r: r.namespace))
        view_outputs = tuple(sorted(self.view_outputs, key=lambda v: v.namespace))
        features = tuple(f for r in realtime for f in r.features) + tuple(
            f for v in view_outputs for f in v.features
        )
        return ResolvedService(
            workspace=workspace,
            name=name,
            servable=servable,
            enable_online_caching=enable_online_caching,
            join_keys=tuple(self.join_keys.values()),
            request_context_keys=tuple(self.context_keys.values()),
            features=features,
            reads=tuple(self.reads),
            realtime=realtime,
            views=view_outputs,
        )

    def __init__(self, views: dict[int, FeatureView], entities: dict[int, Entity]) -> None:
        self.views = views
        self.entities = entities
        self.join_keys: dict[str, NameAndType] = {}
        self.context_keys: dict[str, NameAndType] = {}
        self.reads: list[StoreRead] = []
        self._read_index: dict[tuple[int, tuple[str, ...]], int] = {}
        self.view_outputs: list[ViewOutput] = []
        self.realtime: list[RealtimeOutput] = []

    def _read(self, view: FeatureView, key_map: dict[str, str]) -> int:
        keys = [k for link in view.entities for k in self.entities[link.entity_id].join_keys]
        names = tuple(key_map.get(k.name, k.name) for k in keys)
        for key, request_name in zip(keys, names, strict=True):
            self.join_keys.setdefault(request_name, _name_and_type(request_name, key.type))
        cache_key = (view.id, names)
        if cache_key not in self._read_index:
            self._read_index[cache_key] = len(self.reads)
            self.reads.append(
                StoreRead(
                    feature_view_id=view.id,
                    view_name=view.name,
                    key_names=names,
                    ttl_seconds=view.ttl_seconds,
                    feature_types={f.name: parse_type(f.type) for f in view.features},
                    aggregation=spec_from_stored(view.aggregation),
                )
            )
        return self._read_index[cache_key]

    @staticmethod
    def _outputs(
        view: FeatureView, namespace: str, subset: list[str] | None
    ) -> list[OutputFeature]:
        chosen = [f for f in view.features if subset is None or f.name in subset]
        result = []
        for feature in chosen:
            parsed = parse_type(feature.type)
            result.append(
                OutputFeature(
                    name=f"{namespace}.{feature.name}",
                    feature=feature.name,
                    type=parsed,
                    data_type=parsed.data_type(),
                    description=feature.description,
                    tags=dict(feature.tags),
                )
            )
        return result

    def add(
        self, view_id: int, subset: list[str] | None, namespace: str | None, key_map: dict[str, str]
    ) -> None:
        view = self.views[view_id]
        namespace = namespace or view.name
        if view.kind != "realtime":
            read = self._read(view, key_map)
            outputs = sorted(self._outputs(view, namespace, subset), key=lambda f: f.feature)
            self.view_outputs.append(
                ViewOutput(read, namespace, tuple(outputs), view.cache_max_age_seconds)
            )
            return
        inputs: list[RealtimeInput] = []
        for source in view.realtime_sources:
            if source.kind == "request":
                fields = tuple(
                    _name_and_type(f["name"], f["type"]) for f in source.request_schema or ()
                )
                for field in fields:
                    self.context_keys.setdefault(field.name, field)
                inputs.append(RequestInput(fields))
            else:
                upstream = self.views[source.feature_view_id]  # type: ignore[index]  # a feature_view source always has one
                inputs.append(StoredInput(self._read(upstream, key_map)))
        self.realtime.append(
            RealtimeOutput(
                view_name=view.name,
                namespace=namespace,
                features=tuple(self._outputs(view, namespace, subset)),
                inputs=tuple(inputs),
                transform_source=view.transform_source or "",
                transform_function=view.transform_function or "",
            )
        )

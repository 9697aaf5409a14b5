"""Reads what a workspace holds in the database back into `Definitions`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.aggregation import spec_from_stored
from app.models import Entity, FeatureService, FeatureView, PushSource, Workspace
from app.repo.definitions import (
    Definitions,
    EntityDef,
    FeatureDef,
    FeatureServiceDef,
    FeatureViewDef,
    FieldDef,
    PushSourceDef,
    RealtimeSourceDef,
    RealtimeViewDef,
    ServiceItemDef,
)


def find_workspace(session: Session, name: str) -> Workspace | None:
    return session.scalars(select(Workspace).where(Workspace.name == name)).one_or_none()


def stored_definitions(session: Session, workspace: Workspace) -> Definitions:
    """Everything the workspace holds, as the values a definitions file would produce."""
    out = Definitions()
    entities = session.scalars(
        select(Entity).where(Entity.workspace_id == workspace.id).order_by(Entity.id)
    ).all()
    entity_names = {e.id: e.name for e in entities}
    for entity in entities:
        out.entities[entity.name] = EntityDef(
            entity.name,
            tuple(FieldDef(k.name, k.type) for k in entity.join_keys),
            entity.description,
        )
    sources = session.scalars(
        select(PushSource).where(PushSource.workspace_id == workspace.id).order_by(PushSource.id)
    ).all()
    source_names = {s.id: s.name for s in sources}
    for source in sources:
        out.push_sources[source.name] = PushSourceDef(
            source.name,
            source.timestamp_field,
            tuple(FieldDef(f.name, f.type) for f in source.fields),
            source.description,
        )
    views = session.scalars(
        select(FeatureView).where(FeatureView.workspace_id == workspace.id).order_by(FeatureView.id)
    ).all()
    view_names = {v.id: v.name for v in views}
    for view in views:
        features = tuple(
            FeatureDef(f.name, f.type, f.description, dict(f.tags)) for f in view.features
        )
        if view.kind == "realtime":
            out.realtime_views[view.name] = RealtimeViewDef(
                name=view.name,
                sources=tuple(
                    RealtimeSourceDef("request", s.name or "", _fields(s.request_schema))
                    if s.kind == "request"
                    else RealtimeSourceDef("feature_view", view_names[s.feature_view_id or 0])
                    for s in view.realtime_sources
                ),
                features=features,
                transform_file=view.transform_file or "",
                transform_function=view.transform_function or "",
                transform_source=view.transform_source or "",
                description=view.description,
                tags=dict(view.tags),
            )
        else:
            out.feature_views[view.name] = FeatureViewDef(
                name=view.name,
                kind=view.kind,
                entities=tuple(entity_names[link.entity_id] for link in view.entities),
                features=features,
                source=source_names.get(view.source_id) if view.source_id else None,
                ttl_seconds=view.ttl_seconds,
                online=view.online,
                cache_max_age_seconds=view.cache_max_age_seconds,
                description=view.description,
                tags=dict(view.tags),
                aggregation=spec_from_stored(view.aggregation),
            )
    services = session.scalars(
        select(FeatureService)
        .where(FeatureService.workspace_id == workspace.id)
        .order_by(FeatureService.id)
    ).all()
    for service in services:
        out.feature_services[service.name] = FeatureServiceDef(
            name=service.name,
            items=tuple(
                ServiceItemDef(
                    view_names[item.feature_view_id],
                    tuple(item.features) if item.features else None,
                    item.namespace,
                    dict(item.join_key_map) if item.join_key_map else None,
                )
                for item in service.items
            ),
            online_serving_enabled=service.online_serving_enabled,
            enable_online_caching=service.enable_online_caching,
            description=service.description,
            tags=dict(service.tags),
        )
    return out


def _fields(raw: list[dict[str, str]] | None) -> tuple[FieldDef, ...]:
    return tuple(FieldDef(f["name"], f["type"]) for f in raw or ())

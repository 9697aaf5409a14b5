"""Workspace operations and `apply`. Functions here flush; the CLI command commits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app import changes
from app.aggregation import stored_spec
from app.changes import DEFINITIONS_TOPIC
from app.models import (
    Entity,
    EntityJoinKey,
    Feature,
    FeatureService,
    FeatureServiceItem,
    FeatureView,
    FeatureViewEntity,
    PushSource,
    PushSourceField,
    RealtimeSource,
    Workspace,
)
from app.repo.definitions import Definitions, FeatureDef
from app.repo.plan import Plan, compute_plan
from app.repo.state import find_workspace, stored_definitions
from app.store import delete_values


class WorkspaceError(Exception):
    """A workspace operation that cannot be done (exists already, not found, ...)."""


def create_workspace(session: Session, name: str, *, live: bool) -> Workspace:
    if find_workspace(session, name) is not None:
        raise WorkspaceError(f"Workspace {name} already exists")
    workspace = Workspace(name=name, live=live)
    session.add(workspace)
    session.flush()
    changes.announce(session, DEFINITIONS_TOPIC, name)
    return workspace


def set_workspace_live(session: Session, workspace: Workspace, *, live: bool) -> bool:
    """Make the workspace live (serving) or development; True when that changed it."""
    if workspace.live == live:
        return False
    workspace.live = live
    session.flush()
    changes.announce(session, DEFINITIONS_TOPIC, workspace.name)
    return True


@dataclass(frozen=True, slots=True)
class WorkspaceSummary:
    name: str
    live: bool


def list_workspaces(session: Session) -> list[WorkspaceSummary]:
    """Every workspace, by name."""
    return [
        WorkspaceSummary(w.name, w.live)
        for w in session.scalars(select(Workspace).order_by(Workspace.name))
    ]


@dataclass(frozen=True)
class PlannedApply:
    """What `apply` would do to a workspace: the file's definitions and the plan to reach them."""

    workspace: Workspace
    desired: Definitions
    plan: Plan


def plan_apply(session: Session, desired: Definitions, workspace_name: str) -> PlannedApply:
    """Plan `desired` against the workspace; WorkspaceError when it does not exist."""
    workspace = find_workspace(session, workspace_name)
    if workspace is None:
        raise WorkspaceError(
            f'Workspace "{workspace_name}" not found. '
            f"Create it with `tectonite workspace create {workspace_name}`."
        )
    return PlannedApply(
        workspace, desired, compute_plan(stored_definitions(session, workspace), desired)
    )


def delete_workspace(session: Session, name: str) -> None:
    """Delete the workspace with all its definitions and stored values."""
    workspace = find_workspace(session, name)
    if workspace is None:
        raise WorkspaceError(f'Workspace "{name}" not found.')
    # Service items and realtime sources RESTRICT view deletion; remove them first.
    view_ids = select(FeatureView.id).where(FeatureView.workspace_id == workspace.id)
    session.execute(delete(FeatureService).where(FeatureService.workspace_id == workspace.id))
    session.execute(delete(RealtimeSource).where(RealtimeSource.realtime_view_id.in_(view_ids)))
    delete_values(session, view_ids)
    session.execute(delete(FeatureView).where(FeatureView.workspace_id == workspace.id))
    session.delete(workspace)
    session.flush()
    changes.announce(session, DEFINITIONS_TOPIC, name)


def apply_plan(session: Session, workspace: Workspace, desired: Definitions, plan: Plan) -> None:
    """Make the workspace hold exactly `desired`, following `plan`'s creates/updates/deletes."""
    applier = _Applier(session, workspace, desired)
    for change in plan.changes:
        if change.action == "delete":
            applier.delete(change.kind, change.name)
        else:
            applier.upsert(change.kind, change.name)
            if change.destructive:
                applier.clear_values(change.name)
    session.execute(
        update(Workspace)
        .where(Workspace.id == workspace.id)
        .values(definitions_version=Workspace.definitions_version + 1)
    )
    session.flush()
    changes.announce(session, DEFINITIONS_TOPIC, workspace.name)


class _Applier:
    def __init__(self, session: Session, workspace: Workspace, desired: Definitions) -> None:
        self.session = session
        self.workspace = workspace
        self.desired = desired

    def _find(self, model: type[Any], name: str) -> Any:
        return self.session.scalars(
            select(model).where(model.workspace_id == self.workspace.id, model.name == name)
        ).one_or_none()

    def _id(self, model: type[Any], name: str) -> int:
        found = self._find(model, name)
        if found is None:  # the plan orders creates by dependency, so this is a bug
            raise LookupError(f"{model.__name__} {name} must exist before it is referenced")
        return int(found.id)

    def clear_values(self, view_name: str) -> None:
        delete_values(self.session, [self._id(FeatureView, view_name)])

    def delete(self, kind: str, name: str) -> None:
        model = {
            "Entity": Entity,
            "PushSource": PushSource,
            "FeatureView": FeatureView,
            "RealtimeFeatureView": FeatureView,
            "FeatureService": FeatureService,
        }[kind]
        found = self._find(model, name)
        if found is None:
            return
        if model is FeatureView and (found.kind == "realtime") != (kind == "RealtimeFeatureView"):
            # The plan turned this name into the other kind of view, and the upsert (which runs
            # before deletes) converted the row in place: it is no longer the one to delete.
            return
        self.session.delete(found)
        self.session.flush()

    def upsert(self, kind: str, name: str) -> None:
        getattr(self, f"_upsert_{kind}")(name)
        self.session.flush()

    def _row(self, model: type[Any], name: str, **values: object) -> Any:
        """The existing row updated with `values`, or a new one holding them; flushed."""
        row = self._find(model, name)
        if row is None:
            row = model(workspace_id=self.workspace.id, name=name)
            self.session.add(row)
        for column, value in values.items():
            setattr(row, column, value)
        self.session.flush()
        return row

    def _replace(self, child: type[Any], column: str, parent_id: int, rows: list[Any]) -> None:
        self.session.execute(delete(child).where(getattr(child, column) == parent_id))
        self.session.add_all(rows)

    def _upsert_Entity(self, name: str) -> None:  # noqa: N802 (named after the kind)
        definition = self.desired.entities[name]
        entity = self._row(Entity, name, description=definition.description)
        self._replace(
            EntityJoinKey,
            "entity_id",
            entity.id,
            [
                EntityJoinKey(entity_id=entity.id, position=i, name=k.name, type=k.type)
                for i, k in enumerate(definition.join_keys)
            ],
        )
        self.session.expire(entity, ["join_keys"])

    def _upsert_PushSource(self, name: str) -> None:  # noqa: N802
        definition = self.desired.push_sources[name]
        source = self._row(
            PushSource,
            name,
            description=definition.description,
            timestamp_field=definition.timestamp_field,
        )
        self._replace(
            PushSourceField,
            "push_source_id",
            source.id,
            [
                PushSourceField(push_source_id=source.id, position=i, name=f.name, type=f.type)
                for i, f in enumerate(definition.schema)
            ],
        )
        self.session.expire(source, ["fields"])

    def _features(self, view_id: int, features: Iterable[FeatureDef]) -> list[Feature]:
        return [
            Feature(
                feature_view_id=view_id,
                position=i,
                name=f.name,
                type=f.type,
                description=f.description,
                tags=dict(f.tags),
            )
            for i, f in enumerate(features)
        ]

    def _upsert_FeatureView(self, name: str) -> None:  # noqa: N802
        definition = self.desired.feature_views[name]
        view = self._row(
            FeatureView,
            name,
            kind=definition.kind,
            description=definition.description,
            tags=dict(definition.tags),
            online=definition.online,
            ttl_seconds=definition.ttl_seconds,
            cache_max_age_seconds=definition.cache_max_age_seconds,
            source_id=self._id(PushSource, definition.source) if definition.source else None,
            transform_file=None,
            transform_function=None,
            transform_source=None,
            aggregation=stored_spec(definition.aggregation),
        )
        self._replace(RealtimeSource, "realtime_view_id", view.id, [])  # was it realtime before?
        self._replace(
            FeatureViewEntity,
            "feature_view_id",
            view.id,
            [
                FeatureViewEntity(
                    feature_view_id=view.id, position=i, entity_id=self._id(Entity, entity)
                )
                for i, entity in enumerate(definition.entities)
            ],
        )
        self._replace(
            Feature, "feature_view_id", view.id, self._features(view.id, definition.features)
        )
        self.session.expire(view, ["entities", "features", "realtime_sources"])

    def _upsert_RealtimeFeatureView(self, name: str) -> None:  # noqa: N802
        definition = self.desired.realtime_views[name]
        view = self._row(
            FeatureView,
            name,
            kind="realtime",
            description=definition.description,
            tags=dict(definition.tags),
            transform_file=definition.transform_file,
            transform_function=definition.transform_function,
            transform_source=definition.transform_source,
            aggregation=None,
            source_id=None,
            ttl_seconds=None,
            cache_max_age_seconds=None,
        )
        # A view that was a regular one before keeps nothing of it: keys, links, stored values.
        self._replace(FeatureViewEntity, "feature_view_id", view.id, [])
        delete_values(self.session, [view.id])
        self._replace(
            RealtimeSource,
            "realtime_view_id",
            view.id,
            [
                RealtimeSource(
                    realtime_view_id=view.id,
                    position=i,
                    kind=s.kind,
                    name=s.name if s.kind == "request" else None,
                    request_schema=[{"name": f.name, "type": f.type} for f in s.schema]
                    if s.kind == "request"
                    else None,
                    feature_view_id=self._id(FeatureView, s.name)
                    if s.kind == "feature_view"
                    else None,
                )
                for i, s in enumerate(definition.sources)
            ],
        )
        self._replace(
            Feature, "feature_view_id", view.id, self._features(view.id, definition.features)
        )
        self.session.expire(view, ["realtime_sources", "features", "entities"])

    def _upsert_FeatureService(self, name: str) -> None:  # noqa: N802
        definition = self.desired.feature_services[name]
        service = self._row(
            FeatureService,
            name,
            description=definition.description,
            tags=dict(definition.tags),
            online_serving_enabled=definition.online_serving_enabled,
            enable_online_caching=definition.enable_online_caching,
        )
        self._replace(
            FeatureServiceItem,
            "feature_service_id",
            service.id,
            [
                FeatureServiceItem(
                    feature_service_id=service.id,
                    position=i,
                    feature_view_id=self._id(FeatureView, item.feature_view),
                    features=list(item.features) if item.features else None,
                    namespace=item.namespace,
                    join_key_map=dict(item.join_key_map) if item.join_key_map else None,
                )
                for i, item in enumerate(definition.items)
            ],
        )
        self.session.expire(service, ["items"])

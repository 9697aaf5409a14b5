"""`reset`: wipe stored values (latest values, aggregation events and tiles) and caches, or
everything but keys and roles, between tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import changes
from app.changes import DEFINITIONS_TOPIC
from app.models import FeatureView, Workspace
from app.repo.service import delete_workspace
from app.store import delete_values

VALUES, ALL = "values", "all"
SCOPES = (VALUES, ALL)


class UnknownWorkspace(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ResetResult:
    scope: str
    workspace: str | None
    values_deleted: int
    workspaces_deleted: int

    def to_json(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "workspace": self.workspace,
            "valuesDeleted": self.values_deleted,
            "workspacesDeleted": self.workspaces_deleted,
        }


def reset(session: Session, *, scope: str = VALUES, workspace: str | None = None) -> ResetResult:
    """Delete stored values (scope "values") or whole workspaces (scope "all") of `workspace`,
    or of every workspace; API keys and role bindings are never touched. Serving caches are
    invalidated through the change feed when the transaction commits. The caller commits."""
    names = (
        [workspace]
        if workspace is not None
        else list(session.scalars(select(Workspace.name).order_by(Workspace.name)))
    )
    if (
        workspace is not None
        and session.scalar(select(Workspace.id).where(Workspace.name == workspace)) is None
    ):
        raise UnknownWorkspace(workspace)
    views = select(FeatureView.id).join(Workspace, Workspace.id == FeatureView.workspace_id)
    if workspace is not None:
        views = views.where(Workspace.name == workspace)
    values_deleted = delete_values(session, views)
    workspaces_deleted = 0
    if scope == ALL:
        for name in names:
            delete_workspace(session, name)
            workspaces_deleted += 1
    # Feature-service caches hang off the definitions topic; "" drops every workspace's entries.
    changes.announce(session, DEFINITIONS_TOPIC, workspace or "")
    return ResetResult(scope, workspace, values_deleted, workspaces_deleted)

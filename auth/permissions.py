"""Roles and what they allow, and the principal a verified key stands for.

Roles nest like Tecton's (reference §17.1): each includes everything of the ones before it.

| Role     | Permissions added                                              |
|----------|----------------------------------------------------------------|
| viewer   | view_metadata, ingest_dry_run                                  |
| consumer | read_features                                                  |
| editor   | ingest                                                         |
| owner    | manage_workspace                                               |
| admin    | emulator_admin; always on all workspaces                       |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from auth.models import ROLES

VIEW_METADATA = "view_metadata"
INGEST_DRY_RUN = "ingest_dry_run"
READ_FEATURES = "read_features"
INGEST = "ingest"
MANAGE_WORKSPACE = "manage_workspace"
EMULATOR_ADMIN = "emulator_admin"

ADMIN_ROLE = "admin"
WORKSPACE_ROLES = tuple(role for role in ROLES if role != ADMIN_ROLE)

_ADDED_BY_ROLE: dict[str, frozenset[str]] = {
    "viewer": frozenset({VIEW_METADATA, INGEST_DRY_RUN}),
    "consumer": frozenset({READ_FEATURES}),
    "editor": frozenset({INGEST}),
    "owner": frozenset({MANAGE_WORKSPACE}),
    "admin": frozenset({EMULATOR_ADMIN}),
}


def _cumulative() -> dict[str, frozenset[str]]:
    result: dict[str, frozenset[str]] = {}
    granted: frozenset[str] = frozenset()
    for role in ROLES:
        granted = granted | _ADDED_BY_ROLE[role]
        result[role] = granted
    return result


ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = _cumulative()
PERMISSIONS = ROLE_PERMISSIONS[ADMIN_ROLE]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified key acts for, and what it may do where.

    `everywhere` holds permissions granted on all workspaces; `per_workspace` the rest.
    """

    key_id: str
    service_account_id: str
    name: str
    everywhere: frozenset[str] = frozenset()
    per_workspace: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, permission: str, workspace: str) -> bool:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        return permission in self.everywhere or permission in self.per_workspace.get(
            workspace, frozenset()
        )

    @property
    def is_admin(self) -> bool:
        return EMULATOR_ADMIN in self.everywhere


def grants_from_bindings(
    bindings: Iterable[tuple[str, str | None]],
) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """(role, workspace or None for all workspaces) pairs → (everywhere, per workspace)."""
    everywhere: set[str] = set()
    per_workspace: dict[str, set[str]] = {}
    for role, workspace in bindings:
        permissions = ROLE_PERMISSIONS.get(role, frozenset())
        if workspace is None or role == ADMIN_ROLE:
            everywhere |= permissions
        else:
            per_workspace.setdefault(workspace, set()).update(permissions)
    return frozenset(everywhere), {ws: frozenset(p) for ws, p in per_workspace.items()}

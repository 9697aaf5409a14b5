"""Bringing the database to the state an init directory describes, idempotently.

- definitions: planned against the stored state and applied only when they differ (a
  re-apply of the same files is a no-op);
- data files: bulk-loaded with the store's last-write-wins guard, so re-loading the same files
  leaves every value as it was (and newer values written since stay); an aggregate view's
  events file is loaded while the view holds no events (events are not idempotent: each row
  is one more event), and events past the view's ttl at the emulator's "now" are left out;
- keys: matched by description; a fixed key is stored as given, a generated one is created
  once and reported once (it cannot be shown again on a later start).

Everything happens in the caller's transaction, which commits only when the whole directory
loaded: a bad file changes nothing. Nothing here commits.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from app import changes
from app.ingest.bulk import BulkLoadError, load_events, load_file
from app.ingest.service import BulkTargetError, bulk_target
from app.initdir.layout import InitDir, InitDirError, KeyEntry, WorkspaceDir, with_lines
from app.repo.loader import DefinitionsError, load_definitions
from app.repo.plan import compute_plan
from app.repo.service import apply_plan, create_workspace, set_workspace_live
from app.repo.state import find_workspace, stored_definitions
from app.serving import clock
from app.store import analyze, has_events
from auth import store
from auth.keys import parse_key
from auth.models import ApiKey

ANALYZE_AFTER_ROWS = 10_000
CREATED_BY = "tectonite init"


@dataclass(frozen=True)
class CreatedKey:
    description: str
    role: str
    workspace: str | None
    key: str | None  # None for a fixed key (the file holds it already)


@dataclass
class InitReport:
    """What loading did, for the lines `serve --init` and `import` print."""

    workspaces_changed: list[str] = field(default_factory=list)
    workspaces_unchanged: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_written: int = 0
    created_keys: list[CreatedKey] = field(default_factory=list)
    # Aggregate views whose events file was not loaded because they hold events already.
    views_with_events: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.workspaces_changed:
            parts.append("applied " + ", ".join(self.workspaces_changed))
        if self.workspaces_unchanged:
            parts.append("unchanged " + ", ".join(self.workspaces_unchanged))
        parts.append(f"read {self.rows_read} rows, wrote {self.rows_written}")
        parts.append(f"{len(self.created_keys)} key(s) created")
        if self.views_with_events:
            parts.append("events kept (already loaded) in " + ", ".join(self.views_with_events))
        return "Init directory: " + "; ".join(parts) + "."


def load_init_dir(session: Session, init: InitDir, configured_secret: str | None) -> InitReport:
    """Apply the directory in the session's transaction; InitDirError names file and line."""
    report = InitReport()
    for workspace in init.workspaces:
        _workspace(session, workspace, report)
    if init.keys:
        _keys(session, init.path / "keys.yaml", init.keys, configured_secret, report)
    return report


def _workspace(session: Session, folder: WorkspaceDir, report: InitReport) -> None:
    try:
        desired = load_definitions(folder.definitions)
    except DefinitionsError as exc:
        raise InitDirError(with_lines(folder.definitions, exc.errors)) from None
    workspace = find_workspace(session, folder.name)
    created = workspace is None
    if workspace is None:
        workspace = create_workspace(session, folder.name, live=folder.live)
    live_changed = set_workspace_live(session, workspace, live=folder.live)
    plan = compute_plan(stored_definitions(session, workspace), desired)
    if not plan.empty:
        apply_plan(session, workspace, desired, plan)
    if created or live_changed or not plan.empty:
        report.workspaces_changed.append(folder.name)
    else:
        report.workspaces_unchanged.append(folder.name)
    aggregate_views = {n for n, v in desired.feature_views.items() if v.aggregation is not None}
    written = 0
    for data in folder.data_files:
        try:
            target = bulk_target(session, folder.name, data.view)
        except BulkTargetError as exc:
            raise InitDirError(
                [f"{data.path}: {exc} (files in data/ are named after views)"]
            ) from None
        try:
            if data.view in aggregate_views:
                # Events: each row one more event. Loading the same file again would count its
                # events twice, so a view's events load only while it has none (idempotent
                # restarts); events past the ttl at the emulator's "now" are left out.
                if has_events(session, target.id):
                    report.views_with_events.append(f"{folder.name}/{data.view}")
                    continue
                result = load_events(
                    session,
                    target,
                    data.path,
                    file_format=data.file_format,
                    now=clock.stored_now(session),
                    skip_past_ttl=True,
                )
            else:
                result = load_file(session, target, data.path, file_format=data.file_format)
            read, wrote = result.read, result.written
        except BulkLoadError as exc:
            raise InitDirError([f"{data.path}: {message}" for message in exc.messages]) from None
        report.rows_read += read
        report.rows_written += wrote
        written += wrote
    if written >= ANALYZE_AFTER_ROWS:
        analyze(session)


def _keys(
    session: Session,
    path: Path,
    entries: tuple[KeyEntry, ...],
    configured_secret: str | None,
    report: InitReport,
) -> None:
    secret = store.server_secret(session, configured_secret)
    stored = list(store.list_api_keys(session))
    by_description = {key.description: key for key in stored}
    by_id = {key.id: key for key in stored}
    for entry in entries:
        existing = by_description.get(entry.description)
        if entry.key is not None:
            key_id = parse_key(entry.key).key_id
            holder = by_id.get(key_id)
            if holder is not None and holder.description != entry.description:
                raise InitDirError(
                    [
                        f"{path}:{entry.line}: the key's id {key_id} belongs to another stored "
                        f"key ({holder.description!r}); choose another key"
                    ]
                )
            if existing is not None and (
                existing.id != key_id or store.find_api_key(session, secret, entry.key) is None
            ):
                # The file now holds another key under this description: replace the old one.
                store.delete_service_account(session, existing.service_account_id)
                existing = None
        if existing is None:
            account = store.create_service_account(
                session,
                name=entry.description,
                description="Declared in keys.yaml",
                created_by=CREATED_BY,
            )
            _, new_key = store.create_api_key(
                session,
                secret,
                service_account_id=account.id,
                description=entry.description,
                created_by=getpass.getuser(),
                fixed_key=entry.key,
            )
            store.assign_role(session, account.id, entry.role, entry.workspace)
            report.created_keys.append(
                CreatedKey(
                    entry.description,
                    entry.role,
                    entry.workspace,
                    None if entry.key is not None else new_key.key,
                )
            )
        else:
            _ensure_only_role(session, existing, entry)
    changes.announce(session, changes.AUTH_TOPIC)


def _ensure_only_role(session: Session, key: ApiKey, entry: KeyEntry) -> None:
    """The key's account holds exactly the role the file declares."""
    bindings = store.list_role_bindings(session, key.service_account_id)
    wanted = (entry.role, entry.workspace)
    for binding in bindings:
        if (binding.role, binding.workspace) != wanted:
            store.unassign_role(session, key.service_account_id, binding.role, binding.workspace)
    if wanted not in {(b.role, b.workspace) for b in bindings}:
        store.assign_role(session, key.service_account_id, entry.role, entry.workspace)

"""Shared definitions and helpers for the ingest tests (API, bulk CLI, store semantics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, select, text

from app.db import Database
from app.models import FeatureView, Workspace
from tests.repo.helpers import write_repo

DEFINITIONS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
  - name: merchant
    join_keys: [{name: merchant_id, type: Int64}]
push_sources:
  - name: events
    timestamp_field: ts
    schema:
      - {name: user_id, type: String}
      - {name: merchant_id, type: Int64}
      - {name: amount, type: Float64}
      - {name: clicks, type: Int64}
      - {name: tags, type: Array(String)}
      - {name: ts, type: Timestamp}
  - name: orphan_events
    timestamp_field: ts
    schema:
      - {name: user_id, type: String}
      - {name: v, type: Int64}
      - {name: ts, type: Timestamp}
feature_views:
  - name: user_events
    entities: [user]
    source: events
    ttl: 30d
    features:
      - {name: amount, type: Float64}
      - {name: clicks, type: Int64}
      - {name: tags, type: Array(String)}
  - name: user_merchant_events
    entities: [user, merchant]
    source: events
    features:
      - {name: amount, type: Float64}
  - name: user_events_offline
    entities: [user]
    source: events
    online: false
    features:
      - {name: clicks, type: Int64}
  - name: orphan_view
    entities: [user]
    source: orphan_events
    online: false
    features:
      - {name: v, type: Int64}
  - name: profile
    kind: table
    entities: [user]
    features:
      - {name: name, type: String}
      - {name: level, type: Int64}
      - {name: score, type: Float64}
      - {name: active, type: Bool}
      - {name: seen, type: Timestamp}
      - {name: flags, type: Array(Bool)}
      - {name: attrs, type: "Map(String, Int64)"}
      - {name: home, type: "Struct(lat Float64, lng Float64)"}
  - name: merchant_stats
    kind: batch
    entities: [merchant]
    features:
      - {name: rate, type: Float64}
"""


def apply_definitions(
    runner: Any, tmp_path: Path, workspace: str = "prod", *, live: bool = True
) -> None:
    """Create `workspace` and apply DEFINITIONS to it."""
    runner.ok("workspace", "create", workspace, "--live" if live else "--development")
    path = write_repo(tmp_path / f"repo_{workspace}", DEFINITIONS)
    runner.ok("apply", "-f", str(path), "--workspace", workspace, "--yes")


def create_key(runner: Any, role: str, workspace: str = "prod") -> str:
    return runner.ok(
        "api-key",
        "create",
        "--description",
        f"{role} key",
        "--workspace",
        workspace,
        "--role",
        role,
    ).stdout.strip()


def stored(
    database: Database | Connection, view: str, workspace: str = "prod"
) -> dict[str, tuple[str, dict[str, Any]]]:
    """{entity_key: (event time ISO in UTC, features)} for one view."""
    statement = text(
        """
        SELECT v.entity_key, to_char(v.event_time AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), v.features::text
          FROM online_values v
          JOIN feature_views f ON f.id = v.feature_view_id
          JOIN workspaces w ON w.id = f.workspace_id
         WHERE w.name = :ws AND f.name = :view
         ORDER BY v.entity_key
        """
    )
    params = {"ws": workspace, "view": view}
    if isinstance(database, Database):
        with database.read() as connection:
            rows = connection.execute(statement, params).all()
    else:
        rows = database.execute(statement, params).all()
    return {key: (ts, orjson.loads(features)) for key, ts, features in rows}


def view_id(connection: Connection, view: str, workspace: str = "prod") -> int:
    return connection.execute(
        select(FeatureView.id)
        .join(Workspace, Workspace.id == FeatureView.workspace_id)
        .where(Workspace.name == workspace, FeatureView.name == view)
    ).scalar_one()

"""Putting feature values into the online store for serving tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app import store
from app.db import Database
from app.models import FeatureView, Workspace
from app.types import coerce_value, encode_value, parse_type


def put_values(
    database: Database,
    workspace: str,
    view_name: str,
    keys: list[str],
    event_time: datetime,
    values: dict[str, Any],
) -> None:
    """Store one row as the writers do: coerced, wire-encoded, keyed by `entity_key`, through
    the store's last-write-wins upsert; committed."""
    with database.session() as session:
        view = session.scalars(
            select(FeatureView)
            .join(Workspace, Workspace.id == FeatureView.workspace_id)
            .where(Workspace.name == workspace, FeatureView.name == view_name)
        ).one()
        types = {f.name: parse_type(f.type) for f in view.features}
        encoded = {n: encode_value(types[n], coerce_value(types[n], v)) for n, v in values.items()}
        row = store.ValueRow(
            view.id, store.entity_key(keys), event_time, store.features_json(encoded)
        )
        store.put_values(session, [row])
        session.commit()

"""Putting feature values into the online store for serving tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.models import FeatureView, OnlineValue, Workspace
from app.online_store import entity_key
from app.types import coerce_value, encode_value, parse_type


def put_values(
    database: Any,
    workspace: str,
    view_name: str,
    keys: list[str],
    event_time: datetime,
    values: dict[str, Any],
) -> None:
    """Store one row as the writers do: coerced, wire-encoded, keyed by `entity_key`."""
    with database.session() as session:
        view = session.scalars(
            select(FeatureView)
            .join(Workspace, Workspace.id == FeatureView.workspace_id)
            .where(Workspace.name == workspace, FeatureView.name == view_name)
        ).one()
        types = {f.name: parse_type(f.type) for f in view.features}
        encoded = {n: encode_value(types[n], coerce_value(types[n], v)) for n, v in values.items()}
        session.merge(
            OnlineValue(
                feature_view_id=view.id,
                entity_key=entity_key(keys),
                event_time=event_time,
                features=encoded,
            )
        )
        session.commit()

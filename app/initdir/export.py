"""`tectonite export`: one workspace as an init directory (the layout `import` reads).

Definitions are regenerated as YAML from the stored state (not copied from any file), each
realtime view's transform source is written back to a file beside them, the current values
of every plain view are written as JSON Lines in their wire encoding (which the bulk loader
reads back exactly), and so are the events of every aggregate view (which `import` folds into
tiles again). Keys are never exported. Nothing here writes to the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.aggregation import AggregationSpec
from app.ingest.service import bulk_target
from app.initdir.layout import DATA_FOLDER, DEFINITIONS_FILE, WORKSPACE_FILE
from app.models import Entity, EntityJoinKey, FeatureView, FeatureViewEntity, Workspace
from app.repo.definitions import Definitions, FeatureDef, format_duration
from app.repo.state import stored_definitions
from app.serving import clock
from app.store import iter_view_events, iter_view_rows
from app.types import encode_value, format_timestamp


@dataclass
class ExportReport:
    views: int = 0
    rows: int = 0


def export_workspace(session: Session, workspace: Workspace, target: Path) -> ExportReport:
    """Write `target/<workspace>/…`; existing files of the same names are replaced."""
    folder = target / workspace.name
    (folder / DATA_FOLDER).mkdir(parents=True, exist_ok=True)
    definitions = stored_definitions(session, workspace)
    transform_files = _transform_files(definitions)
    for relative, source in transform_files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    document = definitions_document(definitions, dict(_file_of(definitions)))
    (folder / DEFINITIONS_FILE).write_text(
        f"# Exported by `tectonite export --workspace {workspace.name}`.\n"
        + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    settings = folder / WORKSPACE_FILE
    if not workspace.live:
        settings.write_text("live: false\n", encoding="utf-8")
    elif settings.exists():
        settings.unlink()
    report = ExportReport()
    now = clock.stored_now(session)
    for view in workspace_views(session, workspace):
        key_names = [k.name for link in view.entities for k in link_keys(session, link)]
        path = folder / DATA_FOLDER / f"{view.name}.jsonl"
        if definitions.feature_views[view.name].aggregation is not None:
            report.rows += _write_events(session, workspace, view, path, now)
        else:
            report.rows += _write_values(session, view, key_names, path)
        report.views += 1
    return report


def workspace_views(session: Session, workspace: Workspace) -> list[FeatureView]:
    """The workspace's views that store something (not realtime ones), by name."""
    return list(
        session.scalars(
            select(FeatureView)
            .where(FeatureView.workspace_id == workspace.id, FeatureView.kind != "realtime")
            .order_by(FeatureView.name)
        )
    )


def link_keys(session: Session, link: FeatureViewEntity) -> list[EntityJoinKey]:
    entity = session.get(Entity, link.entity_id)
    return list(entity.join_keys) if entity is not None else []


def _write_values(session: Session, view: FeatureView, key_names: list[str], path: Path) -> int:
    key_types = {}
    for link in view.entities:
        for key in link_keys(session, link):
            key_types[key.name] = key.type
    count = 0
    with path.open("wb") as out:
        for stored_key, event_time, features in iter_view_rows(session, view.id):
            parts = orjson.loads(stored_key)
            row: dict[str, Any] = {
                name: int(part) if key_types[name] == "Int64" else part
                for name, part in zip(key_names, parts, strict=True)
            }
            row["timestamp"] = format_timestamp(event_time)
            row.update(features)
            out.write(orjson.dumps(row) + b"\n")
            count += 1
    return count


def _write_events(
    session: Session, workspace: Workspace, view: FeatureView, path: Path, now: datetime
) -> int:
    """An aggregate view's events as the events file `tectonite ingest` and `import` read:
    join keys, the push source's timestamp field and the aggregated columns, wire-encoded, in
    ingestion order per entity. Events past the view's ttl at `now` are left out: no window
    can read them any more."""
    target = bulk_target(session, workspace.name, view.name)
    spec = target.aggregation
    assert spec is not None  # noqa: S101 (the caller checks)
    since = None if spec.ttl_us is None else now - timedelta(microseconds=spec.ttl_us)
    types = dict(target.source_columns)
    columns = [c for c in target.aggregated_columns if c in types]
    timestamp = target.source_timestamp or "timestamp"
    count = 0
    with path.open("wb") as out:
        for stored_key, event_time, values in iter_view_events(session, view.id, since):
            parts = orjson.loads(stored_key)
            row: dict[str, Any] = {
                name: int(part) if key_type == "Int64" else part
                for (name, key_type), part in zip(target.join_keys, parts, strict=True)
            }
            row[timestamp] = format_timestamp(event_time)
            for column in columns:
                row[column] = encode_value(types[column], values.get(column))
            out.write(orjson.dumps(row) + b"\n")
            count += 1
    return count


def _file_of(definitions: Definitions) -> list[tuple[str, str]]:
    """(realtime view, transform file relative to features.yaml) for every realtime view.

    A view keeps its file name when it is a plain relative path that no other view uses for
    a different source; otherwise it gets `transforms/<view>.py`."""
    taken: dict[str, str] = {}
    out = []
    for name, view in definitions.realtime_views.items():
        relative = view.transform_file
        pure = PurePosixPath(relative)
        usable = (
            relative
            and not pure.is_absolute()
            and ".." not in pure.parts
            and relative not in (DEFINITIONS_FILE, WORKSPACE_FILE)
            and pure.parts[0] != DATA_FOLDER
            and taken.get(relative, view.transform_source) == view.transform_source
        )
        if not usable:
            relative = f"transforms/{name}.py"
        taken[relative] = view.transform_source
        out.append((name, relative))
    return out


def _transform_files(definitions: Definitions) -> dict[str, str]:
    files = dict(_file_of(definitions))
    return {files[n]: v.transform_source for n, v in definitions.realtime_views.items()}


def _feature(feature: FeatureDef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": feature.name, "type": feature.type}
    if feature.description is not None:
        out["description"] = feature.description
    if feature.tags:
        out["tags"] = dict(feature.tags)
    return out


def _duration_us(us: int) -> str:
    if us % 1_000_000 == 0:
        return format_duration(us // 1_000_000) or "0s"
    raise ValueError(f"cannot write a duration of {us} microseconds")


def _aggregate_features(spec: AggregationSpec, declared: tuple[FeatureDef, ...]) -> list[Any]:
    described = {f.name: f for f in declared}
    out = []
    for feature in spec.features:
        window: Any
        if feature.window.size_us is None:
            window = "lifetime"
        else:
            window = _duration_us(feature.window.size_us)
            if feature.window.offset_us:
                window = {"size": window, "offset": "-" + _duration_us(-feature.window.offset_us)}
        item: dict[str, Any] = {
            "function": feature.function.spelling,
            "column": feature.column,
            "window": window,
            "name": feature.name,
        }
        extra = described.get(feature.name)
        if extra is not None and extra.description is not None:
            item["description"] = extra.description
        if extra is not None and extra.tags:
            item["tags"] = dict(extra.tags)
        out.append(item)
    return out


def _described(out: dict[str, Any], description: str | None, tags: dict[str, str]) -> None:
    if description is not None:
        out["description"] = description
    if tags:
        out["tags"] = dict(tags)


def definitions_document(definitions: Definitions, transform_files: dict[str, str]) -> Any:
    """The definitions as the mapping a features.yaml holds (the loader reads it back)."""
    document: dict[str, list[Any]] = {}
    if definitions.entities:
        document["entities"] = []
        for entity in definitions.entities.values():
            item: dict[str, Any] = {"name": entity.name}
            _described(item, entity.description, {})
            item["join_keys"] = [{"name": k.name, "type": k.type} for k in entity.join_keys]
            document["entities"].append(item)
    if definitions.push_sources:
        document["push_sources"] = []
        for source in definitions.push_sources.values():
            item = {"name": source.name}
            _described(item, source.description, {})
            item["timestamp_field"] = source.timestamp_field
            item["schema"] = [{"name": f.name, "type": f.type} for f in source.schema]
            document["push_sources"].append(item)
    if definitions.feature_views:
        document["feature_views"] = []
        for view in definitions.feature_views.values():
            item = {"name": view.name, "kind": view.kind}
            _described(item, view.description, view.tags)
            item["entities"] = list(view.entities)
            if view.source is not None:
                item["source"] = view.source
            if view.ttl_seconds is not None:
                item["ttl"] = format_duration(view.ttl_seconds)
            if not view.online:
                item["online"] = False
            if view.cache_max_age_seconds is not None:
                item["cache_max_age"] = format_duration(view.cache_max_age_seconds)
            if view.aggregation is not None:
                spec = view.aggregation
                if spec.interval_us is not None:
                    item["aggregation_interval"] = _duration_us(spec.interval_us)
                item["stream_processing_mode"] = spec.mode
                item["features"] = _aggregate_features(spec, view.features)
            else:
                item["features"] = [_feature(f) for f in view.features]
            document["feature_views"].append(item)
    if definitions.realtime_views:
        document["realtime_feature_views"] = []
        for realtime in definitions.realtime_views.values():
            item = {"name": realtime.name}
            _described(item, realtime.description, realtime.tags)
            item["sources"] = [
                {"request": s.name, "schema": [{"name": f.name, "type": f.type} for f in s.schema]}
                if s.kind == "request"
                else s.name
                for s in realtime.sources
            ]
            item["features"] = [_feature(f) for f in realtime.features]
            item["transform"] = f"{transform_files[realtime.name]}:{realtime.transform_function}"
            document["realtime_feature_views"].append(item)
    if definitions.feature_services:
        document["feature_services"] = []
        for service in definitions.feature_services.values():
            item = {"name": service.name}
            _described(item, service.description, service.tags)
            if not service.online_serving_enabled:
                item["online_serving_enabled"] = False
            if service.enable_online_caching:
                item["enable_online_caching"] = True
            references: list[Any] = []
            for ref in service.items:
                if ref.features is None and ref.namespace is None and not ref.join_key_map:
                    references.append(ref.feature_view)
                    continue
                reference: dict[str, Any] = {"feature_view": ref.feature_view}
                if ref.features is not None:
                    reference["features"] = list(ref.features)
                if ref.namespace is not None:
                    reference["namespace"] = ref.namespace
                if ref.join_key_map:
                    reference["join_key_map"] = dict(ref.join_key_map)
                references.append(reference)
            item["features"] = references
            document["feature_services"].append(item)
    return document

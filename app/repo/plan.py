"""The difference between a workspace's stored definitions and a file's, Tecton style."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any

from app.aggregation import AggregationSpec
from app.repo.definitions import (
    Definitions,
    FeatureDef,
    FeatureViewDef,
    FieldDef,
    format_duration,
)

KIND_ORDER = ("Entity", "PushSource", "FeatureView", "RealtimeFeatureView", "FeatureService")


@dataclass(frozen=True)
class Change:
    action: str  # create | update | delete
    kind: str  # one of KIND_ORDER
    name: str
    details: tuple[str, ...] = ()  # field-level lines for an update
    destructive: bool = False  # an update that deletes the view's stored values


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not self.changes

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def render(self) -> str:
        """The plan as `tectonite plan` prints it."""
        if self.empty:
            return "🎉 The remote and local state are the same, nothing to do!"
        symbol = {"create": "+ Create", "update": "~ Update", "delete": "- Delete"}
        lines = [" ↓↓↓↓↓↓↓↓↓↓↓↓ Plan Start ↓↓↓↓↓↓↓↓↓↓"]
        for change in self.changes:
            lines.append(f"  {symbol[change.action]} {change.kind}")
            lines.append(f"    name:            {change.name}")
            lines.extend(f"    {detail}" for detail in change.details)
            if change.destructive:
                lines.append("    (stored feature values of this view will be deleted)")
        lines.append(" ↑↑↑↑↑↑↑↑↑↑↑↑ Plan End ↑↑↑↑↑↑↑↑↑↑↑↑")
        lines.append(
            f"Plan: {self.count('create')} to create, {self.count('update')} to update, "
            f"{self.count('delete')} to delete."
        )
        return "\n".join(lines)


def compute_plan(stored: Definitions, desired: Definitions) -> Plan:
    """Creates and updates in dependency order, then deletes in reverse dependency order."""
    changes: list[Change] = []
    stored_kinds, desired_kinds = stored.by_kind(), desired.by_kind()
    for kind in KIND_ORDER:
        old, new = stored_kinds[kind], desired_kinds[kind]
        for name, definition in new.items():
            if name not in old:
                changes.append(Change("create", kind, name))
            elif old[name] != definition:
                details = tuple(_field_changes(old[name], definition))
                changes.append(
                    Change(
                        "update",
                        kind,
                        name,
                        details,
                        destructive=_invalidates_values(old[name], definition, stored, desired),
                    )
                )
    for kind in reversed(KIND_ORDER):
        old, new = stored_kinds[kind], desired_kinds[kind]
        changes.extend(Change("delete", kind, name) for name in old if name not in new)
    # Values are keyed by join keys: an entity whose keys change invalidates its views' values.
    changed_entities = {c.name for c in changes if c.kind == "Entity" and c.action == "update"} & {
        name
        for name, entity in desired.entities.items()
        if name in stored.entities and stored.entities[name].join_keys != entity.join_keys
    }
    if changed_entities:
        changes = [
            _with_destructive(c)
            if c.kind == "FeatureView"
            and c.action == "update"
            and set(desired.feature_views[c.name].entities) & changed_entities
            else c
            for c in changes
        ]
        for name, view in desired.feature_views.items():
            touched = set(view.entities) & changed_entities
            if (
                touched
                and name in stored.feature_views
                and not any(c.kind == "FeatureView" and c.name == name for c in changes)
            ):
                changes.append(
                    Change(
                        "update",
                        "FeatureView",
                        name,
                        (f"join keys of entity {sorted(touched)[0]} changed",),
                        destructive=True,
                    )
                )
    return Plan(tuple(changes))


def _with_destructive(change: Change) -> Change:
    return Change(change.action, change.kind, change.name, change.details, destructive=True)


def _invalidates_values(old: Any, new: Any, stored: Definitions, desired: Definitions) -> bool:
    """A view's stored values no longer fit when its entities or a feature's type change."""
    if not isinstance(old, FeatureViewDef):
        return False
    if old.entities != new.entities:
        return True
    if old.aggregation != new.aggregation:  # functions, windows, interval or mode: new tiles
        return True
    old_types = {f.name: f.type for f in old.features}
    return any(f.name in old_types and old_types[f.name] != f.type for f in new.features)


def _display(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, FieldDef):
        return f"{value.name} {value.type}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_display(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}" if value else "{}"
    return str(value)


def _field_changes(old: Any, new: Any) -> list[str]:
    lines: list[str] = []
    for spec in fields(old):
        name = spec.name
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        label = f"{name}:".ljust(17)
        if name == "transform_source":
            diff = difflib.unified_diff(
                before.splitlines(), after.splitlines(), "stored", "file", lineterm="", n=1
            )
            lines.append("transform source changed:")
            lines.extend(f"  {line}" for line in list(diff)[2:])
        elif name == "aggregation":
            lines.append(f"{label}{_aggregation(before)} -> {_aggregation(after)}")
        elif name == "features":
            lines.extend(_feature_changes(before, after))
        elif name in ("ttl_seconds", "cache_max_age_seconds"):
            short = name.removesuffix("_seconds") + ":"
            lines.append(
                f"{short.ljust(17)}{format_duration(before) or '(none)'} -> "
                f"{format_duration(after) or '(none)'}"
            )
        else:
            lines.append(f"{label}{_display(before)} -> {_display(after)}")
    return lines


def _aggregation(spec: AggregationSpec | None) -> str:
    return "(none)" if spec is None else spec.describe()


def _feature_changes(before: tuple[FeatureDef, ...], after: tuple[FeatureDef, ...]) -> list[str]:
    old = {f.name: f for f in before}
    new = {f.name: f for f in after}
    lines = [f"features:        + {f.name} ({f.type})" for f in after if f.name not in old]
    lines += [f"features:        - {f.name} ({f.type})" for f in before if f.name not in new]
    for name, feature in new.items():
        previous = old.get(name)
        if previous is None or previous == feature:
            continue
        if previous.type != feature.type:
            lines.append(f"features:        ~ {name} type: {previous.type} -> {feature.type}")
        if previous.description != feature.description:
            lines.append(
                f"features:        ~ {name} description: {_display(previous.description)} -> "
                f"{_display(feature.description)}"
            )
        if previous.tags != feature.tags:
            lines.append(
                f"features:        ~ {name} tags: {_display(previous.tags)} -> "
                f"{_display(feature.tags)}"
            )
    if not lines and [f.name for f in before] != [f.name for f in after]:
        lines.append("features:        order changed")
    return lines

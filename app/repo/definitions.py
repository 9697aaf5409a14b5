"""The definitions a workspace is made of, as plain values: what a YAML file declares and what
the database holds are both turned into these, so `plan` can compare them field by field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.aggregation import AggregationSpec

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """`30d`, `12h`, `15m`, `90s` → seconds; raise ValueError otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}; use a number with s, m, h or d (e.g. 30d)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_duration(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    for unit in ("d", "h", "m"):
        size = _DURATION_UNITS[unit]
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str  # canonical spelling, e.g. "Array(Int64)"


@dataclass(frozen=True)
class FeatureDef:
    name: str
    type: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EntityDef:
    name: str
    join_keys: tuple[FieldDef, ...]
    description: str | None = None


@dataclass(frozen=True)
class PushSourceDef:
    name: str
    timestamp_field: str
    schema: tuple[FieldDef, ...]
    description: str | None = None


@dataclass(frozen=True)
class FeatureViewDef:
    name: str
    kind: str  # batch | stream | table
    entities: tuple[str, ...]
    features: tuple[FeatureDef, ...]
    source: str | None = None
    ttl_seconds: int | None = None
    online: bool = True
    cache_max_age_seconds: int | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # A stream view whose features are aggregates of its push source's events.
    aggregation: AggregationSpec | None = None


@dataclass(frozen=True)
class RealtimeSourceDef:
    """A request-context source (`request` + `schema`) or an upstream feature view."""

    kind: str  # request | feature_view
    name: str
    schema: tuple[FieldDef, ...] = ()


@dataclass(frozen=True)
class RealtimeViewDef:
    name: str
    sources: tuple[RealtimeSourceDef, ...]
    features: tuple[FeatureDef, ...]
    transform_file: str
    transform_function: str
    transform_source: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceItemDef:
    feature_view: str
    features: tuple[str, ...] | None = None  # None: all of the view's features
    namespace: str | None = None  # None: the view's name
    join_key_map: dict[str, str] | None = None


@dataclass(frozen=True)
class FeatureServiceDef:
    name: str
    items: tuple[ServiceItemDef, ...]
    online_serving_enabled: bool = True
    enable_online_caching: bool = False
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Definitions:
    """Everything one workspace declares, by kind and name (insertion order kept)."""

    entities: dict[str, EntityDef] = field(default_factory=dict)
    push_sources: dict[str, PushSourceDef] = field(default_factory=dict)
    feature_views: dict[str, FeatureViewDef] = field(default_factory=dict)
    realtime_views: dict[str, RealtimeViewDef] = field(default_factory=dict)
    feature_services: dict[str, FeatureServiceDef] = field(default_factory=dict)

    def by_kind(self) -> dict[str, dict[str, Any]]:
        """Objects grouped by the kind name plan output uses, in dependency order."""
        return {
            "Entity": self.entities,
            "PushSource": self.push_sources,
            "FeatureView": self.feature_views,
            "RealtimeFeatureView": self.realtime_views,
            "FeatureService": self.feature_services,
        }

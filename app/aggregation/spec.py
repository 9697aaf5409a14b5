"""An aggregate feature view's aggregation spec: its features, windows, interval and mode;
default names; the stored JSON form; and the two operations the store needs — folding events
into tile partials, and computing every feature from the tiles and raw events of a read.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.aggregation.durations import from_us, human_readable, parse_duration_us, to_us
from app.aggregation.functions import AggregateFunction, parse_function
from app.aggregation.partials import (
    Partial,
    fold_stored,
    merge_all,
    partial_from_json,
    partial_from_value,
    partial_key,
)
from app.aggregation.windows import (
    CONTINUOUS,
    TIME_INTERVAL,
    Window,
    WindowRead,
    continuous_tile_us,
    effective_time_us,
    floor_to,
    implicit_ttl_us,
    window_read,
)

# A tile's stored partials: {partial key: Partial.to_json()}.
TileJson = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """One ingested event: its timestamp, an ingestion sequence number that orders events with
    equal timestamps (later ingested = more recent), and its column values, typed as the push
    source's schema says (ints, floats, str, bool, lists; None for null)."""

    timestamp: datetime
    sequence: int
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AggregateFeature:
    name: str
    function: AggregateFunction
    column: str
    input_type: str  # the column's type spelling in the push source
    output_type: str
    window: Window

    @property
    def partial_key(self) -> str:
        return partial_key(self.function, self.column)


def default_name(
    column: str,
    function: AggregateFunction,
    window: Window,
    interval_us: int | None,
    mode: str,
) -> str:
    """Tecton's `build_aggregation_default_name` (reference §3.1), without compaction/series:
    `{column}_{function}_{window}_{interval|continuous}[_offset_{abs(offset)}]`."""
    size = "lifetime" if window.size_us is None else human_readable(window.size_us)
    interval = "continuous" if mode == CONTINUOUS else human_readable(interval_us or 0)
    name = f"{column}_{function.resolved_name}_{size}_{interval}"
    if window.offset_us < 0:
        name += f"_offset_{human_readable(window.offset_us)}"
    return name.replace(" ", "")


@dataclass(frozen=True, slots=True)
class AggregationSpec:
    """Everything a view's aggregation needs; hashable and comparable, so `plan` can diff it."""

    mode: str  # time_interval | continuous
    interval_us: int | None  # aggregation_interval; None only in continuous mode
    features: tuple[AggregateFeature, ...]  # declared order

    # ------------------------------------------------------------------ derived values

    @property
    def tile_us(self) -> int:
        """The tile size partials are kept at (the interval; continuous: see windows.py)."""
        if self.mode == TIME_INTERVAL:
            assert self.interval_us  # noqa: S101 (validated: time_interval needs an interval)
            return self.interval_us
        return continuous_tile_us(self.interval_us, [f.window for f in self.features])

    @property
    def ttl_us(self) -> int | None:
        return implicit_ttl_us(self.mode, self.interval_us, [f.window for f in self.features])

    @property
    def partial_sizes(self) -> dict[str, int | None]:
        """Each partial key the tiles hold → the largest n its features use (None: no n).
        Computed once per feature tuple (every tile merge and read asks, and hashing the
        tuple for a cache key would cost more than the computation); callers must not change
        the dict."""
        features = self.features
        cached = _SIZES.get(id(features))
        if cached is not None and cached[0] is features:
            return cached[1]
        sizes = _partial_sizes(features)
        if len(_SIZES) >= _SIZES_LIMIT:
            _SIZES.clear()
        _SIZES[id(features)] = (features, sizes)  # keeps the tuple alive: its id stays its own
        return sizes

    # ------------------------------------------------------------------ writes

    def tile_start(self, timestamp: datetime) -> datetime:
        """The start of the tile an event at `timestamp` belongs to (a boundary event belongs
        to the later tile)."""
        return from_us(floor_to(to_us(timestamp), self.tile_us))

    def is_past_ttl(self, timestamp: datetime, now: datetime) -> bool:
        """An event this old can never be read again: reject it on ingest."""
        ttl = self.ttl_us
        return ttl is not None and to_us(now) - to_us(timestamp) > ttl

    def event_partials(
        self, event: Event, sizes: dict[str, int | None] | None = None
    ) -> dict[str, Partial]:
        """The partials of one event, by partial key (keys it contributes nothing to left
        out). `sizes` is `partial_sizes`, passed in when folding many events."""
        order = (to_us(event.timestamp), event.sequence)
        result: dict[str, Partial] = {}
        for key, n in (sizes or self.partial_sizes).items():
            column = key.split(":", 1)[1]
            partial = partial_from_value(key, event.values.get(column), order, n)
            if partial is not None:
                result[key] = partial
        return result

    def merge_into_tile(self, tile: TileJson | None, events: Iterable[Event]) -> TileJson:
        """A stored tile (or None for a new one) with `events` folded in, as stored JSON."""
        partials = self.read_tile(tile) if tile else {}
        sizes = self.partial_sizes
        for event in events:
            order = (to_us(event.timestamp), event.sequence)
            for key, n in sizes.items():
                value = event.values.get(key.split(":", 1)[1])
                existing = partials.get(key)
                if (
                    existing is not None
                    and value is not None
                    and existing.add_in_place(value, order)
                ):
                    continue
                partial = partial_from_value(key, value, order, n)
                if partial is not None:
                    partials[key] = partial if existing is None else existing.absorb(partial)
        return {key: partial.to_json() for key, partial in partials.items()}

    def read_tile(self, tile: TileJson) -> dict[str, Partial]:
        sizes = self.partial_sizes
        return {
            key: partial_from_json(key, data, sizes[key])
            for key, data in tile.items()
            if key in sizes
        }

    # ------------------------------------------------------------------ reads

    def window_reads(self, now: datetime) -> dict[str, WindowRead]:
        """Feature name → what its window reads at `now`."""
        now_us, tile = to_us(now), self.tile_us
        return {f.name: window_read(f.window, self.mode, tile, now_us) for f in self.features}

    def read_plan(self, now: datetime) -> ReadPlan:
        """The tile-start range and raw event ranges one SQL statement must fetch."""
        reads = list(self.window_reads(now).values())
        starts = [r.tiles_from for r in reads]
        tiles_from = (
            None if any(s is None for s in starts) else min(s for s in starts if s is not None)
        )
        tiles_before = max(r.tiles_before for r in reads)
        raw = tuple(sorted({(r.start, r.end) for w in reads for r in w.raw}, key=_range_sort))
        return ReadPlan(
            from_us(tiles_from) if tiles_from is not None else None,
            from_us(tiles_before),
            tuple((from_us(s) if s is not None else None, from_us(e)) for s, e in raw),
        )

    def effective_time(self, now: datetime) -> datetime:
        return from_us(effective_time_us(self.mode, self.tile_us, to_us(now)))

    def compute(
        self,
        now: datetime,
        tiles: Iterable[tuple[datetime | int, TileJson]],
        events: Iterable[Event] = (),
    ) -> dict[str, Any]:
        """Every feature's served Python value at `now` (None for an empty window) from the
        stored tiles and, in continuous mode, the raw events of the read plan's ranges. Rows
        outside a window are ignored, so the caller may pass a superset."""
        return {name: value for name, (value, _) in self.evaluate(now, tiles, events).items()}

    def evaluate(
        self,
        now: datetime,
        tiles: Iterable[tuple[datetime | int, TileJson]],
        events: Iterable[Event] = (),
    ) -> dict[str, tuple[Any, bool]]:
        """`compute`, with whether each window held any value of its column: a window with
        values can still finalise to None (var_samp of one value), which serving answers as
        PRESENT, while an empty one is MISSING_DATA."""
        reads = self.window_reads(now)
        sizes = self.partial_sizes
        decoded = [(start_us(start), tile) for start, tile in tiles]
        raw = [(to_us(e.timestamp), e) for e in events]
        if not raw or not any(read.raw for read in reads.values()):
            return self._evaluate_tiles(reads, decoded)
        cache: dict[tuple[int, str], Partial] = {}
        results: dict[str, tuple[Any, bool]] = {}
        for feature in self.features:
            read, key = reads[feature.name], feature.partial_key
            parts: list[Partial] = []
            for start, tile in decoded:
                if key in tile and read.has_tile(start):
                    part = cache.get((start, key))
                    if part is None:
                        part = cache[(start, key)] = partial_from_json(key, tile[key], sizes[key])
                    parts.append(part)
            for ts, event in raw:
                if read.has_raw(ts):
                    column = event.values.get(feature.column)
                    part = partial_from_value(key, column, (ts, event.sequence), sizes[key])
                    if part is not None:
                        parts.append(part)
            merged = merge_all(parts)
            results[feature.name] = (
                (None, False) if merged is None else (merged.finalize(feature.function), True)
            )
        return results

    def _evaluate_tiles(
        self, reads: dict[str, WindowRead], tiles: list[tuple[int, TileJson]]
    ) -> dict[str, tuple[Any, bool]]:
        """`evaluate` when no raw event is read (time_interval mode, or no events at the
        ragged ends): each window is a slice of the tiles sorted by start, folded on the
        stored JSON (`fold_stored`)."""
        tiles.sort(key=_first)
        starts = [start for start, _ in tiles]
        sizes = self.partial_sizes
        results: dict[str, tuple[Any, bool]] = {}
        for feature in self.features:
            read, key = reads[feature.name], feature.partial_key
            low = 0 if read.tiles_from is None else bisect.bisect_left(starts, read.tiles_from)
            high = bisect.bisect_left(starts, read.tiles_before)
            data = [tile[key] for _, tile in tiles[low:high] if key in tile]
            results[feature.name] = (
                (fold_stored(key, data, sizes[key], feature.function), True)
                if data
                else (None, False)
            )
        return results

    # ------------------------------------------------------------------ stored form

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "mode": self.mode,
            "interval_us": self.interval_us,
            "features": [
                {
                    "name": f.name,
                    "function": f.function.spelling,
                    "column": f.column,
                    "input_type": f.input_type,
                    "output_type": f.output_type,
                    "window_us": f.window.size_us,
                    "offset_us": f.window.offset_us,
                }
                for f in self.features
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AggregationSpec:
        return cls(
            mode=data["mode"],
            interval_us=data["interval_us"],
            features=tuple(
                AggregateFeature(
                    name=f["name"],
                    function=_stored_function(f["function"]),
                    column=f["column"],
                    input_type=f["input_type"],
                    output_type=f["output_type"],
                    window=Window(f["window_us"], f["offset_us"]),
                )
                for f in data["features"]
            ),
        )

    def describe(self) -> str:
        """A one-line summary for plan output."""
        interval = human_readable(self.interval_us) if self.interval_us else "none"
        parts = [
            f"{f.name}={f.function.spelling}({f.column}, "
            f"{'lifetime' if f.window.size_us is None else human_readable(f.window.size_us)}"
            f"{', offset -' + human_readable(f.window.offset_us) if f.window.offset_us else ''})"
            for f in self.features
        ]
        return f"{self.mode}, interval {interval}: " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """What one read of a view fetches: tiles with `tiles_from <= start < tiles_before`
    (`tiles_from` None: no lower bound), and events with `start < ts <= end` for each raw
    range (`start` None: no lower bound)."""

    tiles_from: datetime | None
    tiles_before: datetime
    raw_ranges: tuple[tuple[datetime | None, datetime], ...]


def stored_spec(spec: AggregationSpec | None) -> dict[str, Any] | None:
    """The spec as `feature_views.aggregation` keeps it (JSONB; None for other views)."""
    return None if spec is None else spec.to_json()


def spec_from_stored(data: Mapping[str, Any] | None) -> AggregationSpec | None:
    """The spec a view's `aggregation` column keeps, or None for a view without aggregates."""
    if not data:
        return None
    return AggregationSpec.from_json(data)


_SIZES: dict[int, tuple[tuple[AggregateFeature, ...], dict[str, int | None]]] = {}
_SIZES_LIMIT = 1024


def _partial_sizes(features: tuple[AggregateFeature, ...]) -> dict[str, int | None]:
    sizes: dict[str, int | None] = {}
    for feature in features:
        n = feature.function.n
        current = sizes.get(feature.partial_key)
        sizes[feature.partial_key] = max(current or 0, n) if n is not None else current
    return sizes


def start_us(start: datetime | int) -> int:
    """A tile's start as microseconds since the epoch (the store gives integers already)."""
    return start if isinstance(start, int) else to_us(start)


def _first(item: tuple[int, TileJson]) -> int:
    return item[0]


def _range_sort(item: tuple[int | None, int]) -> tuple[int, int]:
    return (item[0] if item[0] is not None else -(2**62), item[1])


def _merge_all(into: dict[str, Partial], parts: Mapping[str, Partial]) -> None:
    """Fold `parts` into `into`, whose partials the caller owns."""
    for key, partial in parts.items():
        existing = into.get(key)
        into[key] = partial if existing is None else existing.absorb(partial)


def _stored_function(spelling: str) -> AggregateFunction:
    return parse_function(spelling)


def parse_window(raw: Any) -> Window:
    """`1d`, `lifetime` or `{size: 1d, offset: -1d}` → Window; raise ValueError."""
    if isinstance(raw, dict):
        unknown = set(raw) - {"size", "offset"}
        if unknown:
            raise ValueError(f"unknown window key {sorted(unknown)[0]!r}; use size and offset")
        if "size" not in raw:
            raise ValueError("a window mapping needs a size")
        size = parse_window(raw["size"])
        if size.is_lifetime:
            if raw.get("offset") not in (None, 0, "0s"):
                raise ValueError("a lifetime window takes no offset")
            return size
        offset = parse_duration_us(raw["offset"]) if raw.get("offset") is not None else 0
        if offset > 0:
            raise ValueError(
                f"offset must be zero or negative (how far the window's end lies before now), "
                f"e.g. -{raw['offset']}"
            )
        return Window(size.size_us, offset)
    if isinstance(raw, str) and raw.strip().lower() == "lifetime":
        return Window(None)
    size_us = parse_duration_us(raw)
    if size_us <= 0:
        raise ValueError(f"window must be a positive duration, not {raw!r}")
    return Window(size_us)

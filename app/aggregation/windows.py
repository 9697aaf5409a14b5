"""Window maths relative to the emulated "now" (reference §4.1, §4.2, §4.4, §4.7).

All instants are integers in microseconds since the Unix epoch (see `durations.to_us`).

- time_interval: tiles `[k·I, (k+1)·I)` aligned to the epoch; the leading edge is
  `E = floor(now, I)`; a window takes the events in `[E + offset - W, E + offset)`, i.e. whole
  complete tiles only. `effectiveTime` is `E - I`, the start of the latest complete tile.
- continuous: a window takes the events in `(now + offset - W, now + offset]`; storage tiles
  (of `tile_us`) wholly inside it are read as partials, the two ragged ends as raw events.
  `effectiveTime` is now.
- lifetime: no lower bound (from the first event).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.aggregation.durations import SECOND_US

TIME_INTERVAL = "time_interval"
CONTINUOUS = "continuous"
MODES = (TIME_INTERVAL, CONTINUOUS)
TTL_GRACE_US = 7 * 86_400 * SECOND_US
_MINUTE, _HOUR = 60 * SECOND_US, 3_600 * SECOND_US


@dataclass(frozen=True, slots=True)
class Window:
    """A window: `size_us` None means lifetime; `offset_us` ≤ 0 moves its end back."""

    size_us: int | None
    offset_us: int = 0

    @property
    def is_lifetime(self) -> bool:
        return self.size_us is None


@dataclass(frozen=True, slots=True)
class EventRange:
    """Event timestamps `start < ts <= end` (continuous) or `start <= ts < end` (tiles);
    `start` None is unbounded."""

    start: int | None
    end: int
    closed_end: bool  # True: (start, end]; False: [start, end)

    def contains(self, ts: int) -> bool:
        if self.closed_end:
            return (self.start is None or ts > self.start) and ts <= self.end
        return (self.start is None or ts >= self.start) and ts < self.end

    @property
    def empty(self) -> bool:
        return self.start is not None and self.start >= self.end


@dataclass(frozen=True, slots=True)
class WindowRead:
    """What one window reads: the tiles whose start is in `[tiles_from, tiles_before)`
    (`tiles_from` None: every tile before), plus raw events in `raw` (continuous only)."""

    events: EventRange  # the window itself, as event timestamps
    tiles_from: int | None
    tiles_before: int
    raw: tuple[EventRange, ...] = ()

    def has_tile(self, tile_start: int) -> bool:
        return (self.tiles_from is None or tile_start >= self.tiles_from) and (
            tile_start < self.tiles_before
        )

    def has_raw(self, ts: int) -> bool:
        return any(r.contains(ts) for r in self.raw)

    def tile_starts(self, tile_us: int) -> range:
        """Every tile start the window covers (for a bounded window), oldest first."""
        if self.tiles_from is None:
            raise ValueError("a lifetime window covers every tile before its end")
        return range(self.tiles_from, max(self.tiles_from, self.tiles_before), tile_us)


def floor_to(moment_us: int, interval_us: int) -> int:
    """The start of the epoch-aligned tile holding `moment_us`."""
    return moment_us - moment_us % interval_us


def default_mode(interval_us: int | None) -> str:
    """SPEC §11: time_interval when an interval is given, else continuous."""
    return TIME_INTERVAL if interval_us else CONTINUOUS


def continuous_tile_us(interval_us: int | None, windows: list[Window]) -> int:
    """The storage tile of a continuous view: its interval if it has one, else sized from the
    smallest window as Tecton's stream tiling does (< 1 h → 1 m, < 10 h → 5 m, else 1 h)."""
    if interval_us:
        return interval_us
    sizes = [w.size_us for w in windows if w.size_us is not None]
    smallest = min(sizes) if sizes else 10 * _HOUR
    if smallest < _HOUR:
        return _MINUTE
    if smallest < 10 * _HOUR:
        return 5 * _MINUTE
    return _HOUR


def window_read(window: Window, mode: str, tile_us: int, now_us: int) -> WindowRead:
    """The tiles and raw event ranges one window reads at `now_us`."""
    if mode == TIME_INTERVAL:
        end = floor_to(now_us, tile_us) + window.offset_us
        start = None if window.size_us is None else end - window.size_us
        return WindowRead(EventRange(start, end, closed_end=False), start, end)
    end = now_us + window.offset_us
    start = None if window.size_us is None else end - window.size_us
    events = EventRange(start, end, closed_end=True)
    # Whole tiles [s, s + T) inside (start, end]: s > start and s + T - 1 µs <= end.
    last_whole_end = floor_to(end + 1, tile_us)
    if start is None:
        first_whole = None
        raw_head: tuple[EventRange, ...] = ()
    else:
        first_whole = floor_to(start, tile_us) + tile_us  # > start even when start is aligned
        if first_whole >= last_whole_end:  # no whole tile: the window is all raw
            return WindowRead(events, first_whole, first_whole, (events,))
        raw_head = (EventRange(start, first_whole - 1, closed_end=True),)
    tail = EventRange(last_whole_end - 1, end, closed_end=True)
    raw = raw_head + (() if tail.empty else (tail,))
    return WindowRead(events, first_whole, last_whole_end, raw)


def effective_time_us(mode: str, tile_us: int, now_us: int) -> int:
    """Reference §4.4's best fit: the start of the latest complete tile; continuous: now."""
    if mode == TIME_INTERVAL:
        return floor_to(now_us, tile_us) - tile_us
    return now_us


def implicit_ttl_us(mode: str, interval_us: int | None, windows: list[Window]) -> int | None:
    """interval + longest window (+ its offset) + 7 days; None with a lifetime window (§4.7).
    In continuous mode the interval counts as 0."""
    if any(w.is_lifetime for w in windows):
        return None
    longest = max((w.size_us or 0) - w.offset_us for w in windows)
    interval = interval_us if mode == TIME_INTERVAL and interval_us else 0
    return interval + longest + TTL_GRACE_US

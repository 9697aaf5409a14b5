"""Mergeable partial aggregates: one per (kind of partial, column, parameter) in a tile.

Every partial can be made from one event, merged with another of its kind (merge is
commutative and associative, so tiles and events may be combined in any order), written as a
compact JSON-able value for PostgreSQL and read back, and finalised into the served value.

A partial stands for at least one non-null input value, except `count`, which also records
events whose value is null (as 0) so an all-null window counts 0 while an empty one is null.
"""

from __future__ import annotations

import base64
import functools
import math
import operator
from collections.abc import Callable
from typing import Any, ClassVar

import datasketches

from app.aggregation.functions import AggregateFunction

# Events are ordered by (timestamp in µs, sequence): the sequence is the caller's ingestion
# order, so of two events at the same instant the later-ingested one is the more recent.
# Equal (timestamp, sequence) pairs are broken by the value's JSON spelling, so merging is
# deterministic whatever the order.
Order = tuple[int, int]


# ----------------------------------------------------------------------------- values


def encode_value(value: Any) -> Any:
    """A column value → JSON (PostgreSQL jsonb has no NaN/Infinity; those become tagged)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$f": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "$f" in value:
        return float(value["$f"])
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def _tie_key(value: Any) -> str:
    return repr(encode_value(value))


def _int_out(value: int) -> int | str:
    """Int sums beyond 64 bits are stored as strings (orjson writes 64-bit integers only)."""
    return value if -(2**63) <= value < 2**63 else str(value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ----------------------------------------------------------------------------- partials


class Partial:
    """Base of every partial aggregate."""

    kind: ClassVar[str]

    def merge(self, other: Partial) -> Partial:
        raise NotImplementedError

    def add_in_place(self, value: Any, order: Order) -> bool:
        """Fold one non-null event value into this owned partial if that is cheaper than
        making a partial of it and merging; False when the caller must merge instead."""
        return False

    def absorb(self, other: Partial) -> Partial:
        """Merge `other` into this partial, which the caller owns; may update it in place
        (sketches do, which is much cheaper than building a new one per event)."""
        return self.merge(other)

    def to_json(self) -> Any:
        raise NotImplementedError

    def finalize(self, function: AggregateFunction) -> Any:
        raise NotImplementedError


class CountPartial(Partial):
    kind = "count"

    def __init__(self, count: int) -> None:
        self.count = count

    def merge(self, other: Partial) -> CountPartial:
        assert isinstance(other, CountPartial)  # noqa: S101
        return CountPartial(self.count + other.count)

    def to_json(self) -> int:
        return self.count

    @classmethod
    def from_json(cls, data: Any) -> CountPartial:
        return cls(int(data))

    def finalize(self, function: AggregateFunction) -> int:
        return self.count


class SumPartial(Partial):
    """The exact sum: Python ints for integer columns, floats for float ones."""

    kind = "sum"

    def __init__(self, total: int | float) -> None:
        self.total = total

    def merge(self, other: Partial) -> SumPartial:
        assert isinstance(other, SumPartial)  # noqa: S101
        return SumPartial(self.total + other.total)

    def to_json(self) -> Any:
        if isinstance(self.total, int):
            return _int_out(self.total)
        return encode_value(self.total)

    @classmethod
    def from_json(cls, data: Any) -> SumPartial:
        if isinstance(data, str):
            return cls(int(data))
        return cls(decode_value(data))

    def finalize(self, function: AggregateFunction) -> int | float:
        return self.total


class MomentsPartial(Partial):
    """Count, mean and sum of squared deviations (M2) of a float column, merged with Chan et
    al.'s formula: numerically stabler than Σx² - (Σx)²/n, and exact for small integers."""

    kind = "moments"

    def __init__(self, count: int, mean: float, m2: float) -> None:
        self.count, self.mean, self.m2 = count, mean, m2

    def merge(self, other: Partial) -> MomentsPartial:
        assert isinstance(other, MomentsPartial)  # noqa: S101
        # Order the operands so the float arithmetic is the same whichever side is `self`.
        a, b = sorted((self, other), key=lambda p: (p.count, p.mean, p.m2))
        count = a.count + b.count
        delta = b.mean - a.mean
        mean = (a.count * a.mean + b.count * b.mean) / count
        m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / count
        return MomentsPartial(count, mean, m2)

    def to_json(self) -> list[Any]:
        return [self.count, encode_value(self.mean), encode_value(self.m2)]

    @classmethod
    def from_json(cls, data: Any) -> MomentsPartial:
        return cls(int(data[0]), float(decode_value(data[1])), float(decode_value(data[2])))

    def finalize(self, function: AggregateFunction) -> float | None:
        if function.kind == "mean":
            return self.mean
        samp = function.kind in ("var_samp", "stddev_samp")
        divisor = self.count - 1 if samp else self.count
        if divisor <= 0:
            return None  # var_samp of one value
        variance = max(self.m2 / divisor, 0.0)
        return math.sqrt(variance) if function.kind.startswith("stddev") else variance


class IntMomentsPartial(Partial):
    """Count, sum and sum of squares of an integer column, as exact Python ints: mean and
    variances are then correctly rounded whatever order events and tiles were merged in."""

    kind = "moments"

    def __init__(self, count: int, total: int, squares: int) -> None:
        self.count, self.total, self.squares = count, total, squares

    def merge(self, other: Partial) -> IntMomentsPartial:
        assert isinstance(other, IntMomentsPartial)  # noqa: S101
        return IntMomentsPartial(
            self.count + other.count, self.total + other.total, self.squares + other.squares
        )

    def to_json(self) -> list[Any]:
        return ["i", self.count, _int_out(self.total), _int_out(self.squares)]

    @classmethod
    def from_json(cls, data: Any) -> IntMomentsPartial:
        return cls(int(data[1]), int(data[2]), int(data[3]))

    def finalize(self, function: AggregateFunction) -> float | None:
        n = self.count
        if function.kind == "mean":
            return self.total / n
        divisor = n * (n - 1) if function.kind in ("var_samp", "stddev_samp") else n * n
        if divisor <= 0:
            return None  # var_samp of one value
        variance = (n * self.squares - self.total * self.total) / divisor
        return math.sqrt(variance) if function.kind.startswith("stddev") else variance


class ExtremePartial(Partial):
    """min or max (`kind` chooses)."""

    kind = "extreme"

    def __init__(self, value: Any, maximum: bool) -> None:
        self.value, self.maximum = value, maximum

    def merge(self, other: Partial) -> ExtremePartial:
        assert isinstance(other, ExtremePartial)  # noqa: S101
        pick = max if self.maximum else min
        return ExtremePartial(pick(self.value, other.value), self.maximum)

    def to_json(self) -> Any:
        return encode_value(self.value)

    def finalize(self, function: AggregateFunction) -> Any:
        return self.value


class LastPartial(Partial):
    """The most recent non-null value and its order."""

    kind = "last"

    def __init__(self, order: Order, value: Any) -> None:
        self.order, self.value = order, value

    def _key(self) -> tuple[int, int, str]:
        return (*self.order, _tie_key(self.value))

    def merge(self, other: Partial) -> LastPartial:
        assert isinstance(other, LastPartial)  # noqa: S101
        return self if self._key() >= other._key() else other

    def to_json(self) -> list[Any]:
        return [self.order[0], self.order[1], encode_value(self.value)]

    @classmethod
    def from_json(cls, data: Any) -> LastPartial:
        return cls((int(data[0]), int(data[1])), decode_value(data[2]))

    def finalize(self, function: AggregateFunction) -> Any:
        return self.value


class EntriesPartial(Partial):
    """Up to `n` (order, value) entries: the most recent (`latest`) or the earliest ones,
    optionally one per distinct value (its latest or earliest occurrence)."""

    kind = "entries"

    def __init__(
        self, n: int, latest: bool, distinct: bool, entries: list[tuple[Order, Any]]
    ) -> None:
        self.n, self.latest, self.distinct = n, latest, distinct
        self.entries = self._trim(entries)

    @classmethod
    def stored(
        cls, n: int, latest: bool, distinct: bool, entries: list[tuple[Order, Any]]
    ) -> EntriesPartial:
        """Entries read back from a tile: already trimmed and ascending, so not sorted again."""
        if len(entries) > n:
            return cls(n, latest, distinct, entries)
        partial = cls.__new__(cls)
        partial.n, partial.latest, partial.distinct, partial.entries = n, latest, distinct, entries
        return partial

    def _trim(self, entries: list[tuple[Order, Any]]) -> list[tuple[Order, Any]]:
        if len({order for order, _ in entries}) == len(entries):  # the usual case: no ties
            ranked = sorted(entries, key=lambda e: e[0], reverse=self.latest)
        else:
            ranked = sorted(entries, key=lambda e: (*e[0], _tie_key(e[1])), reverse=self.latest)
        if self.distinct:
            seen: set[Any] = set()
            unique = []
            for entry in ranked:  # the first occurrence seen is the one to keep
                value = entry[1]
                key = value if type(value) in (str, int) else _tie_key(value)
                if key not in seen:
                    seen.add(key)
                    unique.append(entry)
            ranked = unique
        kept = ranked[: self.n]
        return kept[::-1] if self.latest else kept  # ascending by order

    def merge(self, other: Partial) -> EntriesPartial:
        assert isinstance(other, EntriesPartial)  # noqa: S101
        return EntriesPartial(
            max(self.n, other.n), self.latest, self.distinct, self.entries + other.entries
        )

    def to_json(self) -> list[Any]:
        return [[o[0], o[1], encode_value(v)] for o, v in self.entries]

    def finalize(self, function: AggregateFunction) -> list[Any]:
        """Ascending by time, oldest first; `function.n` may be smaller than the partial's."""
        n = function.n or self.n
        values = [v for _, v in self.entries]
        return values[-n:] if self.latest else values[:n]


class DistinctCountPartial(Partial):
    """approx_count_distinct: the exact set of values while it is small, then a DataSketches
    HyperLogLog sketch of lg_k = precision (relative standard error ≈ 1.04/√2^precision)."""

    kind = "distinct"

    def __init__(
        self,
        precision: int,
        values: set[Any] | None,
        sketch: datasketches.hll_sketch | None = None,
    ) -> None:
        self.precision = precision
        self.values = values
        self.sketch = sketch
        if self.values is not None and len(self.values) > exact_distinct_limit(precision):
            self.sketch = self._sketch_of(self.values)
            self.values = None

    def _sketch_of(self, values: set[Any]) -> datasketches.hll_sketch:
        sketch = datasketches.hll_sketch(self.precision, datasketches.tgt_hll_type.HLL_8)
        for value in values:
            sketch.update(value)
        return sketch

    def _as_sketch(self) -> datasketches.hll_sketch:
        return self.sketch if self.sketch is not None else self._sketch_of(self.values or set())

    def merge(self, other: Partial) -> DistinctCountPartial:
        assert isinstance(other, DistinctCountPartial)  # noqa: S101
        precision = min(self.precision, other.precision)
        if self.values is not None and other.values is not None:
            return DistinctCountPartial(precision, self.values | other.values)
        union = datasketches.hll_union(precision)
        union.update(self._as_sketch())
        union.update(other._as_sketch())
        return DistinctCountPartial(
            precision, None, union.get_result(datasketches.tgt_hll_type.HLL_8)
        )

    def add_in_place(self, value: Any, order: Order) -> bool:
        if self.sketch is None:
            return False
        self.sketch.update(value)
        return True

    def absorb(self, other: Partial) -> DistinctCountPartial:
        assert isinstance(other, DistinctCountPartial)  # noqa: S101
        if (
            self.sketch is not None
            and other.values is not None
            and other.precision >= self.precision
        ):
            for value in other.values:
                self.sketch.update(value)
            return self
        return self.merge(other)

    def to_json(self) -> dict[str, Any]:
        if self.values is not None:
            return {"p": self.precision, "v": sorted(self.values, key=repr)}
        assert self.sketch is not None  # noqa: S101
        return {"p": self.precision, "hll": _b64(self.sketch.serialize_compact())}

    @classmethod
    def from_json(cls, data: Any) -> DistinctCountPartial:
        if "v" in data:
            return cls(int(data["p"]), set(data["v"]))
        sketch = datasketches.hll_sketch.deserialize(base64.b64decode(data["hll"]))
        return cls(int(data["p"]), None, sketch)

    def finalize(self, function: AggregateFunction) -> int:
        if self.values is not None:
            return len(self.values)
        assert self.sketch is not None  # noqa: S101
        return round(float(self.sketch.get_estimate()))


def exact_distinct_limit(precision: int) -> int:
    """Up to this many distinct values approx_count_distinct is exact (2^precision, at most
    1,024, so an exact set is never much larger than the sketch it stands in for)."""
    return min(1 << precision, 1024)


class QuantilesPartial(Partial):
    """approx_percentile: a DataSketches KLL sketch with k = 2 x precision (default precision
    100 → k 200, normalised rank error ≈ 1.3 % at 99 % confidence). Exact while it holds no
    more than k values: the result is then the sorted values' element at index
    ⌊p·n⌋ (clamped to n - 1)."""

    kind = "quantiles"

    def __init__(self, sketch: datasketches.kll_doubles_sketch) -> None:
        self.sketch = sketch

    @staticmethod
    def k_for(precision: int) -> int:
        return 2 * precision

    def merge(self, other: Partial) -> QuantilesPartial:
        assert isinstance(other, QuantilesPartial)  # noqa: S101
        merged = datasketches.kll_doubles_sketch(min(self.sketch.k, other.sketch.k))
        merged.merge(self.sketch)
        merged.merge(other.sketch)
        return QuantilesPartial(merged)

    def add_in_place(self, value: Any, order: Order) -> bool:
        number = float(value)
        if math.isfinite(number):
            self.sketch.update(number)
        return True

    def absorb(self, other: Partial) -> QuantilesPartial:
        assert isinstance(other, QuantilesPartial)  # noqa: S101
        if other.sketch.k >= self.sketch.k:
            self.sketch.merge(other.sketch)
            return self
        return self.merge(other)

    def to_json(self) -> str:
        return _b64(self.sketch.serialize())

    @classmethod
    def from_json(cls, data: Any) -> QuantilesPartial:
        return cls(datasketches.kll_doubles_sketch.deserialize(base64.b64decode(data)))

    def finalize(self, function: AggregateFunction) -> float:
        return float(self.sketch.get_quantile(function.percentile or 0.0))

    @staticmethod
    def rank_error(precision: int) -> float:
        """The documented normalised rank error (99 % confidence) for a precision."""
        return float(
            datasketches.kll_doubles_sketch.get_normalized_rank_error(
                QuantilesPartial.k_for(precision), False
            )
        )


# ----------------------------------------------------------------------------- partial keys


def partial_key(function: AggregateFunction, column: str) -> str:
    """Which partial a feature reads: features sharing a key share one partial per tile
    (`sum` and `mean` of a column do not, but `mean` and `var_samp` do)."""
    kind = function.kind
    if kind in ("mean", "var_samp", "var_pop", "stddev_samp", "stddev_pop"):
        return f"moments:{column}"
    if kind in ("last_n", "first_n", "last_distinct_n", "first_distinct_n"):
        return f"{kind}:{column}"
    if kind == "approx_count_distinct":
        return f"distinct{function.precision}:{column}"
    if kind == "approx_percentile":
        return f"quantiles{function.precision}:{column}"
    return f"{kind}:{column}"


def _key_kind(key: str) -> str:
    return key.split(":", 1)[0]


def partial_from_value(key: str, value: Any, order: Order, n: int | None = None) -> Partial | None:
    """The partial of one event's column value for `key`; None when it contributes nothing
    (null, or NaN/±inf for approx_percentile). `n` is the largest n the key's features use."""
    kind = _key_kind(key)
    if kind == "count":
        return CountPartial(0 if value is None else 1)
    if value is None:
        return None
    if kind == "sum":
        return SumPartial(value)
    if kind == "moments":
        if isinstance(value, int) and not isinstance(value, bool):
            return IntMomentsPartial(1, value, value * value)
        return MomentsPartial(1, float(value), 0.0)
    if kind in ("min", "max"):
        return ExtremePartial(value, kind == "max")
    if kind == "last":
        return LastPartial(order, value)
    if kind in ("last_n", "first_n", "last_distinct_n", "first_distinct_n"):
        return EntriesPartial(n or 1, kind.startswith("last"), "distinct" in kind, [(order, value)])
    if kind.startswith("distinct"):
        return DistinctCountPartial(int(kind.removeprefix("distinct")), {value})
    if kind.startswith("quantiles"):
        number = float(value)
        if not math.isfinite(number):
            return None
        sketch = datasketches.kll_doubles_sketch(
            QuantilesPartial.k_for(int(kind.removeprefix("quantiles")))
        )
        sketch.update(number)
        return QuantilesPartial(sketch)
    raise ValueError(f"unknown partial key {key!r}")


def merge_all(parts: list[Partial]) -> Partial | None:
    """All of `parts` merged (None for none), without changing them; entries are concatenated
    and trimmed once rather than once per merge."""
    if not parts:
        return None
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, EntriesPartial):
        entries = [e for part in parts for e in part.entries]  # type: ignore[attr-defined]
        n = max(part.n for part in parts)  # type: ignore[attr-defined]
        return EntriesPartial(n, first.latest, first.distinct, entries)
    merged = first.merge(parts[1])
    for part in parts[2:]:
        merged = merged.absorb(part)  # `merged` is a new partial this function owns
    return merged


_READERS: dict[str, Callable[[Any], Partial]] = {
    "count": lambda d: CountPartial.from_json(d),
    "sum": lambda d: SumPartial.from_json(d),
    "moments": lambda d: (
        IntMomentsPartial.from_json(d) if d and d[0] == "i" else MomentsPartial.from_json(d)
    ),
    "last": lambda d: LastPartial.from_json(d),
    "min": lambda d: ExtremePartial(decode_value(d), False),
    "max": lambda d: ExtremePartial(decode_value(d), True),
}


def partial_from_json(key: str, data: Any, n: int | None = None) -> Partial:
    """Read back what `Partial.to_json()` wrote under `key`."""
    kind = _key_kind(key)
    reader = _READERS.get(kind)
    if reader is not None:
        return reader(data)
    if kind in ("last_n", "first_n", "last_distinct_n", "first_distinct_n"):
        entries = [((int(e[0]), int(e[1])), decode_value(e[2])) for e in data]
        return EntriesPartial.stored(
            n or max(len(entries), 1), kind.startswith("last"), "distinct" in kind, entries
        )
    if kind.startswith("distinct"):
        return DistinctCountPartial.from_json(data)
    if kind.startswith("quantiles"):
        return QuantilesPartial.from_json(data)
    raise ValueError(f"unknown partial key {key!r}")


# ----------------------------------------------------------------------------- the read fold

_NO_FAST_FOLD = object()


def fold_stored(key: str, data: list[Any], n: int | None, function: AggregateFunction) -> Any:
    """The served value of `function` over a window's stored partials of `key` (the JSON of
    `Partial.to_json()`, one per tile, oldest tile first; at least one), computed on the JSON
    itself: the same result as reading each into a `Partial`, `merge_all` and `finalize`, but
    without building an object per tile (serving folds every tile of every window per request).
    """
    value = _fast_fold(_key_kind(key), data, function)
    if value is not _NO_FAST_FOLD:
        return value
    merged = merge_all([partial_from_json(key, item, n) for item in data])
    assert merged is not None  # noqa: S101 (data is not empty)
    return merged.finalize(function)


def _fast_fold(kind: str, data: list[Any], function: AggregateFunction) -> Any:
    """`fold_stored` for the partials whose JSON folds directly; `_NO_FAST_FOLD` for the others
    and for the rare encodings (non-finite floats, sums beyond 64 bits) the objects handle."""
    if kind == "count":
        return sum(data)
    if kind in ("sum", "min", "max"):
        if any(type(item) is dict for item in data):
            return _NO_FAST_FOLD  # tagged non-finite floats
        if kind == "min":
            return min(data)
        if kind == "max":
            return max(data)
        if any(type(item) is str for item in data):
            return _NO_FAST_FOLD  # integer sums beyond 64 bits
        return functools.reduce(operator.add, data)  # left to right, as merges add
    if kind == "moments":
        return _fold_moments(data, function)
    if kind == "last":
        best = max(data, key=_ORDER)
        ties = sum(1 for item in data if item[0] == best[0] and item[1] == best[1])
        return decode_value(best[2]) if ties == 1 else _NO_FAST_FOLD
    if kind in ("last_n", "first_n", "last_distinct_n", "first_distinct_n"):
        return _fold_entries(kind, data, function.n or 1)
    return _NO_FAST_FOLD


_ORDER = operator.itemgetter(0, 1)


def _fold_moments(data: list[Any], function: AggregateFunction) -> Any:
    first = data[0]
    if not isinstance(first, list):
        return _NO_FAST_FOLD
    if first and first[0] == "i":
        if any(type(item[2]) is str or type(item[3]) is str for item in data):
            return _NO_FAST_FOLD
        count = sum(item[1] for item in data)
        total = sum(item[2] for item in data)
        squares = sum(item[3] for item in data)
        return IntMomentsPartial(count, total, squares).finalize(function)
    if any(type(item[1]) is dict or type(item[2]) is dict for item in data):
        return _NO_FAST_FOLD
    # Chan et al.'s merge, one tile at a time, exactly as MomentsPartial.merge does it.
    count, mean, m2 = int(first[0]), float(first[1]), float(first[2])
    for item in data[1:]:
        other = (int(item[0]), float(item[1]), float(item[2]))
        mine = (count, mean, m2)
        a, b = (mine, other) if mine <= other else (other, mine)
        count = a[0] + b[0]
        delta = b[1] - a[1]
        mean = (a[0] * a[1] + b[0] * b[1]) / count
        m2 = a[2] + b[2] + delta * delta * a[0] * b[0] / count
    return MomentsPartial(count, mean, m2).finalize(function)


def _fold_entries(kind: str, data: list[Any], n: int) -> list[Any] | object:
    """first/last(n) and their distinct variants over tiles' stored entries (each tile's
    ascending by order, tiles disjoint in time): walk from the newest (last_*) or the oldest
    (first_*) entry and stop at n, keeping each distinct value's first occurrence met."""
    latest = kind.startswith("last")
    distinct = "distinct" in kind
    picked: list[Any] = []
    seen: set[Any] = set()
    tiles = reversed(data) if latest else data
    for tile in tiles:
        entries = reversed(tile) if latest else tile
        for entry in entries:
            value = entry[2]
            if distinct:
                mark = value if type(value) in (str, int) else repr(value)
                if mark in seen:
                    continue
                seen.add(mark)
            picked.append(value)
            if len(picked) >= n:
                break
        if len(picked) >= n:
            break
    if latest:
        picked.reverse()
    return [decode_value(value) for value in picked]

"""Bulk loads: stream a CSV, JSON Lines or Parquet file into one feature view.

Rows are read one at a time (memory does not grow with the file), validated against the view
(join keys, event timestamp, feature types), and streamed with psycopg's COPY into a temporary
staging table; one set-based upsert then moves them into the online store with the same
last-write-wins guard as the Stream Ingest API (`app.store.Staging`). If any row is invalid the
rest of the file is still checked, so every bad line is reported, and nothing is written: the
caller rolls the transaction back. Nothing here commits.

Line numbers: the physical line in CSV (the header is line 1; a quoted value spanning lines
counts from its first line) and JSON Lines; the 1-based row number in Parquet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.ingest.schemas import (
    Converter,
    check_columns,
    event_time,
    key_converter,
    native_converter,
    text_converter,
)
from app.ingest.service import TTL_MESSAGE, TargetView
from app.store import EventRow, StagedRow, Staging, add_events, entity_key
from app.types import FeatureType, ValueTypeError, decode_value

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
MAX_REPORTED_ERRORS = 50
PROGRESS_EVERY = 4096  # rows between progress callbacks

# (rows read so far, units done, units in total or None) — units are bytes, or rows for Parquet.
ProgressCallback = Callable[[int, int, int | None], None]


class BulkLoadError(Exception):
    """The file cannot be loaded; `messages` are lines such as `line 7: …`."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass
class LoadResult:
    read: int
    written: int

    @property
    def skipped(self) -> int:
        """Rows that lost to a newer row (stored, or later in the same file)."""
        return self.read - self.written


@dataclass
class _Errors:
    """The first bad lines (for the report) and how many there were."""

    messages: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.messages) < MAX_REPORTED_ERRORS:
            self.messages.append(f"line {line}: {message}")

    def report(self) -> list[str]:
        extra = self.count - len(self.messages)
        tail = [f"... and {extra} more invalid line(s)"] if extra else []
        return [*self.messages, *tail, "Nothing was written."]


def detect_format(path: Path) -> str | None:
    return _SUFFIXES.get(path.suffix.lower())


@dataclass(frozen=True)
class _Columns:
    """The columns a file for `view` holds: join keys, the event time, the features."""

    view: TargetView
    timestamp: str

    @property
    def expected(self) -> list[str]:
        return [
            *(name for name, _ in self.view.join_keys),
            self.timestamp,
            *(name for name, _ in self.view.features),
        ]

    def converters(
        self, *, text: bool
    ) -> tuple[list[tuple[str, Converter]], list[tuple[str, Converter]]]:
        keys = [(name, key_converter(kind, text=text)) for name, kind in self.view.join_keys]
        make = text_converter if text else native_converter
        features = [(name, make(kind)) for name, kind in self.view.features]
        return keys, features


def load_file(
    session: Session,
    view: TargetView,
    path: Path,
    *,
    file_format: str,
    timestamp_column: str = "timestamp",
    progress: ProgressCallback | None = None,
) -> LoadResult:
    """Validate and load `path` into `view` inside the session's transaction.

    Raises BulkLoadError (having written nothing the caller must keep) on any invalid row.
    """
    columns = _Columns(view, timestamp_column)
    if timestamp_column in {name for name, _ in view.join_keys} | {
        name for name, _ in view.features
    }:
        raise BulkLoadError(
            [f"--timestamp-column `{timestamp_column}` is also a join key or feature of the view"]
        )
    readers = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}
    errors = _Errors()
    rows = readers[file_format](path, columns, errors, progress or _no_progress)

    staging = Staging(session.connection())
    read = 0

    def counted() -> Iterator[StagedRow]:
        """Every row is read (to report every bad line); rows after the first error are not
        staged, as nothing will be written."""
        nonlocal read
        for row in rows:
            read += 1
            if not errors.count:
                yield row

    staging.copy(counted())
    if errors.count:
        raise BulkLoadError(errors.report())
    written = staging.merge(view.id) if read else 0
    staging.drop()
    return LoadResult(read=read, written=written)


EVENT_CHUNK = 5000  # events folded into tiles per statement group


def load_events(
    session: Session,
    view: TargetView,
    path: Path,
    *,
    file_format: str,
    now: datetime,
    timestamp_column: str | None = None,
    progress: ProgressCallback | None = None,
    skip_past_ttl: bool = False,
) -> LoadResult:
    """Validate and load an events file (the push source's columns) into an aggregate view:
    every row is one event, folded into its tile (`app.store.add_events`) in chunks, inside
    the session's transaction. Raises BulkLoadError on any invalid row or an event past the
    view's implicit ttl (`skip_past_ttl`: such events are left out, as an init directory
    loaded again weeks later must still start); the caller then rolls back."""
    spec = view.aggregation
    assert spec is not None  # noqa: S101 (callers check)
    timestamp = timestamp_column or view.source_timestamp or "timestamp"
    # The readers take the source's value columns as the "features" of a row.
    columns = _Columns(replace(view, features=view.source_columns), timestamp)
    types = dict(view.source_columns)
    wanted = sorted({f.column for f in spec.features})
    readers = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}
    errors = _Errors()
    ttl_message = TTL_MESSAGE.format(view=view.name)
    chunk: list[EventRow] = []
    read = written = 0
    for line, key, at, features in readers[file_format](
        path, columns, errors, progress or _no_progress
    ):
        read += 1
        if spec.is_past_ttl(at, now):
            if skip_past_ttl:
                continue
            errors.add(line, ttl_message)
        if errors.count:
            continue
        written += 1
        wire = orjson.loads(features)
        chunk.append(EventRow(key, at, {c: decode_value(types[c], wire.get(c)) for c in wanted}))
        if len(chunk) >= EVENT_CHUNK:
            add_events(session, view.id, spec, chunk)
            chunk = []
    if errors.count:
        raise BulkLoadError(errors.report())
    add_events(session, view.id, spec, chunk)
    return LoadResult(read=read, written=written)


def _no_progress(_rows: int, _done: int, _total: int | None) -> None:
    return None


# ----------------------------------------------------------------------------- CSV


def _csv_rows(
    path: Path, columns: _Columns, errors: _Errors, progress: ProgressCallback
) -> Iterator[StagedRow]:
    total = path.stat().st_size
    with path.open("rb") as raw:
        text_file = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text_file, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            errors.add(1, f"cannot read the header: {exc}")
            return
        problem = check_columns(header, columns.expected, allow_missing=set())
        if problem is None and len(set(header)) != len(header):
            problem = "duplicate column names in the header"
        if problem is not None:
            errors.add(1, problem)
            return
        position = {name: index for index, name in enumerate(header)}
        keys, features = columns.converters(text=True)
        key_slots = [(name, position[name], convert) for name, convert in keys]
        feature_slots = [(name, position[name], convert) for name, convert in features]
        ts_name = columns.timestamp
        ts_index = position[ts_name]
        width = len(header)
        dumps = orjson.dumps
        count = 0
        previous_end = reader.line_num
        while True:
            line = previous_end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                errors.add(line, f"malformed CSV: {exc}")
                break  # the reader cannot resynchronise reliably
            previous_end = reader.line_num
            if not row:
                continue  # a blank line
            count += 1
            if count % PROGRESS_EVERY == 0:
                progress(count, raw.tell(), total)
            if len(row) != width:
                errors.add(line, f"expected {width} values, found {len(row)}")
                continue
            column = ts_name
            try:
                timestamp = event_time(row[ts_index])
                parts = []
                for key_column, index, convert in key_slots:
                    column = key_column
                    parts.append(convert(row[index]))
                values = {}
                for column, index, convert in feature_slots:
                    cell = row[index]
                    values[column] = None if cell == "" else convert(cell)
            except ValueTypeError as exc:
                errors.add(line, f"column `{column}`: {exc}")
                continue
            yield line, entity_key(parts), timestamp, dumps(values).decode()
        progress(count, total, total)


# ------------------------------------------------------------------------ JSON Lines and Parquet


def _mapping_rows(columns: _Columns, errors: _Errors) -> Callable[[int, Any], StagedRow | None]:
    """A converter for rows given as objects (JSON Lines, Parquet); absent features are null."""
    keys, features = columns.converters(text=False)
    expected = columns.expected
    feature_names = {name for name, _ in features}
    ts_name = columns.timestamp
    dumps = orjson.dumps

    def convert_row(line: int, obj: Any) -> StagedRow | None:
        if not isinstance(obj, dict):
            errors.add(line, "expected a JSON object")
            return None
        problem = check_columns(obj, expected, allow_missing=feature_names)
        if problem is not None:
            errors.add(line, problem)
            return None
        column = ts_name
        try:
            timestamp = event_time(obj[ts_name])
            parts = []
            for column, convert in keys:
                parts.append(convert(obj[column]))
            values = {}
            for column, convert in features:
                values[column] = convert(obj.get(column))
        except ValueTypeError as exc:
            errors.add(line, f"column `{column}`: {exc}")
            return None
        return line, entity_key(parts), timestamp, dumps(values).decode()

    return convert_row


def _jsonl_rows(
    path: Path, columns: _Columns, errors: _Errors, progress: ProgressCallback
) -> Iterator[StagedRow]:
    total = path.stat().st_size
    convert_row = _mapping_rows(columns, errors)
    count = 0
    with path.open("rb") as raw:
        for line, data in enumerate(raw, start=1):
            if not data.strip():
                continue
            count += 1
            if count % PROGRESS_EVERY == 0:
                progress(count, raw.tell(), total)
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                errors.add(line, f"invalid JSON: {exc}")
                continue
            row = convert_row(line, obj)
            if row is not None:
                yield row
    progress(count, total, total)


def _parquet_rows(
    path: Path, columns: _Columns, errors: _Errors, progress: ProgressCallback
) -> Iterator[StagedRow]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BulkLoadError(
            ["reading Parquet needs pyarrow: pip install 'tectonite[parquet]'"]
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise BulkLoadError([f"cannot read {path} as Parquet: {exc}"]) from None
    schema = parquet.schema_arrow
    problem = check_columns(schema.names, columns.expected, allow_missing=set())
    if problem is not None:
        raise BulkLoadError([f"columns: {problem}", "Nothing was written."])
    total = parquet.metadata.num_rows
    convert_row = _mapping_rows(columns, errors)
    # Arrow maps arrive as lists of (key, value) pairs; turn them into dicts first.
    map_columns = {name: kind for name, kind in columns.view.features if _contains_map(kind)}
    count = 0
    for batch in parquet.iter_batches(batch_size=8192):
        for obj in batch.to_pylist():
            count += 1
            for name, kind in map_columns.items():
                obj[name] = _arrow_maps(kind, obj[name])
            row = convert_row(count, obj)
            if row is not None:
                yield row
        progress(count, count, total)


def _contains_map(kind: FeatureType) -> bool:
    if kind.kind == "Map":
        return True
    if kind.kind == "Array":
        return _contains_map(kind.element)  # type: ignore[arg-type]  # set for this kind
    if kind.kind == "Struct":
        return any(_contains_map(t) for _, t in kind.fields)
    return False


def _arrow_maps(kind: FeatureType, value: Any) -> Any:
    """Arrow's map values ([(key, value), ...]) as dicts, at any depth."""
    if value is None:
        return None
    if kind.kind == "Map":
        if isinstance(value, list):
            value = dict(value)
        if isinstance(value, dict):
            return {k: _arrow_maps(kind.value, v) for k, v in value.items()}  # type: ignore[arg-type]  # set for this kind
        return value
    if kind.kind == "Array" and isinstance(value, list):
        return [_arrow_maps(kind.element, v) for v in value]  # type: ignore[arg-type]  # set for this kind
    if kind.kind == "Struct" and isinstance(value, dict):
        types = dict(kind.fields)
        return {k: _arrow_maps(types[k], v) if k in types else v for k, v in value.items()}
    return value

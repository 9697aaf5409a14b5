"""Tecton's Aggregation Engine, database-free: the function catalogue, mergeable partial
aggregates, window maths and definition validation. The store, ingest and serving use it."""

from app.aggregation.definitions import DeclaredFeature, build_aggregation, is_aggregate_view
from app.aggregation.functions import AggregateFunction, FunctionError, parse_function
from app.aggregation.spec import (
    AggregateFeature,
    AggregationSpec,
    Event,
    ReadPlan,
    TileJson,
    default_name,
    parse_window,
    spec_from_stored,
    stored_spec,
)
from app.aggregation.windows import CONTINUOUS, TIME_INTERVAL, Window

__all__ = [
    "CONTINUOUS",
    "TIME_INTERVAL",
    "AggregateFeature",
    "AggregateFunction",
    "AggregationSpec",
    "DeclaredFeature",
    "Event",
    "FunctionError",
    "ReadPlan",
    "TileJson",
    "Window",
    "build_aggregation",
    "default_name",
    "is_aggregate_view",
    "parse_function",
    "parse_window",
    "spec_from_stored",
    "stored_spec",
]

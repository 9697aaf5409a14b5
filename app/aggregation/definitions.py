"""Reading and validating the aggregate part of a feature view definition (SPEC §11).

`build_aggregation` is what the repo loader calls: it takes the view's raw YAML values and the
push source's schema, and returns the spec, the features it declares (names and output types)
and every problem found, each as (field path, message) for the loader to prefix with the file
and the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.aggregation.durations import human_readable, parse_duration_us
from app.aggregation.functions import FunctionError, parse_function
from app.aggregation.spec import AggregateFeature, AggregationSpec, default_name, parse_window
from app.aggregation.windows import MODES, TIME_INTERVAL, default_mode
from app.types import TypeSyntaxError, parse_type

Problem = tuple[str, str]  # (field path, message)


class AggregateFeatureSchema(Schema):
    class Meta:
        unknown = RAISE

    function = fields.Raw(required=True)
    column = fields.String(required=True)
    window = fields.Raw(required=True)
    name = fields.String(
        load_default=None,
        validate=validate.Regexp(
            r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be a name of letters, digits and _"
        ),
    )
    description = fields.String(load_default=None)
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)


_FEATURE = AggregateFeatureSchema()


@dataclass(frozen=True, slots=True)
class DeclaredFeature:
    """A feature as the view declares it to serving: its name and output type."""

    name: str
    type: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def is_aggregate_view(item: Any) -> bool:
    """Whether a raw feature-view mapping declares aggregates (any feature has `function`,
    or the view sets `aggregation_interval` or `stream_processing_mode`)."""
    if not isinstance(item, dict):
        return False
    if "aggregation_interval" in item or "stream_processing_mode" in item:
        return True
    features = item.get("features")
    return isinstance(features, list) and any(
        isinstance(f, dict) and "function" in f for f in features
    )


def build_aggregation(
    interval: Any,
    mode: Any,
    raw_features: list[Any],
    source_columns: dict[str, str] | None,
) -> tuple[AggregationSpec | None, list[DeclaredFeature], list[Problem]]:
    """Validate an aggregate view; `source_columns` is the push source's {column: type} (None
    when the source is unknown, which the caller reports). The spec is None when anything is
    wrong."""
    problems: list[Problem] = []
    interval_us: int | None = None
    if interval is not None:
        try:
            interval_us = parse_duration_us(interval)
            if interval_us <= 0:
                raise ValueError(f"must be a positive duration, not {interval!r}")
        except ValueError as exc:
            problems.append(("aggregation_interval", str(exc)))
            interval_us = None
    if mode is None:
        resolved_mode = default_mode(interval_us) if not problems else TIME_INTERVAL
    elif mode in MODES:
        resolved_mode = mode
    else:
        problems.append(("stream_processing_mode", f"must be one of {', '.join(MODES)}"))
        resolved_mode = default_mode(interval_us)
    if resolved_mode == TIME_INTERVAL and interval is None:
        problems.append(
            ("aggregation_interval", "time_interval mode needs an aggregation_interval")
        )

    features: list[AggregateFeature] = []
    declared: list[DeclaredFeature] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(raw_features):
        where = f"features[{index}]"
        if not isinstance(raw, dict) or ("type" in raw and "function" not in raw):
            problems.append(
                (where, "an aggregate view's features are all aggregates "
                        "({function, column, window}); put plain features in another view")
            )  # fmt: skip
            continue
        try:
            data = _FEATURE.load(raw)
        except ValidationError as exc:
            problems.extend(_flatten(where, exc.messages))
            continue
        feature = _feature(where, data, interval_us, resolved_mode, source_columns, problems)
        if feature is None:
            continue
        if feature.name in names:
            problems.append(
                (f"{where}.name" if data["name"] else where,
                 f"duplicate feature name {feature.name!r} (also features[{names[feature.name]}])"
                 + ("" if data["name"] else "; give one of them a name"))
            )  # fmt: skip
            continue
        names[feature.name] = index
        features.append(feature)
        declared.append(
            DeclaredFeature(feature.name, feature.output_type, data["description"], data["tags"])
        )
    if problems or not features:
        return None, declared, problems
    spec = AggregationSpec(resolved_mode, interval_us, tuple(features))
    return spec, declared, problems


def _feature(
    where: str,
    data: dict[str, Any],
    interval_us: int | None,
    mode: str,
    source_columns: dict[str, str] | None,
    problems: list[Problem],
) -> AggregateFeature | None:
    before = len(problems)
    function = None
    try:
        function = parse_function(data["function"])
    except FunctionError as exc:
        problems.append((f"{where}.function", str(exc)))
    window = None
    try:
        window = parse_window(data["window"])
    except ValueError as exc:
        problems.append((f"{where}.window", str(exc)))
    if window is not None and mode == TIME_INTERVAL and interval_us:
        for part, value in (("size", window.size_us), ("offset", window.offset_us)):
            if value and value % interval_us:
                problems.append(
                    (f"{where}.window",
                     f"window {part} {_spelled(data['window'], part)} is not a multiple of "
                     f"the aggregation_interval {human_readable(interval_us)}")
                )  # fmt: skip
    column, input_type = data["column"], None
    if source_columns is not None:
        if column not in source_columns:
            problems.append((f"{where}.column", f"the push source has no column {column!r}"))
        else:
            input_type = source_columns[column]
    if function is not None and input_type is not None:
        try:
            parsed = parse_type(input_type)
        except TypeSyntaxError:
            parsed = None  # the source's own error is reported there
        if parsed is not None and not function.accepts(parsed):
            problems.append(
                (f"{where}.function",
                 f"{function.spelling} does not take column {column!r} of type {input_type}; "
                 f"it takes {function.input_types_text()}")
            )  # fmt: skip
    if len(problems) > before or function is None or window is None or input_type is None:
        return None
    name = data["name"] or default_name(column, function, window, interval_us, mode)
    return AggregateFeature(
        name=name,
        function=function,
        column=column,
        input_type=input_type,
        output_type=function.output_type(parse_type(input_type)),
        window=window,
    )


def _spelled(raw: Any, part: str) -> str:
    if isinstance(raw, dict):
        return str(raw.get(part))
    return str(raw)


def _flatten(prefix: str, messages: Any) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            out.extend(_flatten(f"{prefix}.{key}", value))
    elif isinstance(messages, list):
        for message in messages:
            out.extend(_flatten(prefix, message))
    else:
        out.append((prefix, str(messages)))
    return out

"""Request bodies of `/_emulator`, validated with marshmallow; every error names its field.

The OpenAPI document (app/openapi) describes these requests from these very schemas; `metadata`
says what apispec cannot infer from a custom field or validator.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.emulator.journal import JournalQuery
from app.emulator.reset import SCOPES, VALUES
from app.emulator.targets import ANY, FAULT_ENDPOINTS, JOURNAL_ENDPOINTS
from app.errors import BadRequest
from app.repo.definitions import parse_duration

FAULT_STATUSES = (429, 500, 503, 504)
MAX_DELAY_MS = 60_000
MAX_JOURNAL_LIMIT = 10_000


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def parse_time(text: str) -> datetime:
    """RFC 3339 / ISO 8601; a time without an offset is UTC. ValueError otherwise."""
    value = datetime.fromisoformat(text.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_advance(text: str) -> float:
    """`90m`, `2h`, `30s`, `1d` → seconds."""
    return float(parse_duration(text))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("Not a valid string.")
    return value


class _Time(fields.Field[datetime]):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        text = _text(value)
        try:
            return parse_time(text)
        except ValueError:
            raise ValidationError(
                f"{text!r} is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z)"
            ) from None


class _Duration(fields.Field[float]):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        text = _text(value)
        try:
            return parse_advance(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class _Finite(fields.Float):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)


class ClockChangeSchema(_Strict):
    """Exactly one of the fields."""

    freeze_at = _Time(
        data_key="freezeAt",
        metadata={"type": "string", "format": "date-time", "description": "freeze at this time"},
    )
    advance = _Duration(
        metadata={"type": "string", "description": "move the emulated time on, e.g. `90m`"}
    )
    advance_seconds = _Finite(data_key="advanceSeconds", validate=validate.Range(min=0))
    resume = fields.Boolean(
        validate=validate.Equal(True), metadata={"enum": [True], "description": "run on"}
    )
    reset = fields.Boolean(
        validate=validate.Equal(True), metadata={"enum": [True], "description": "real time"}
    )

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if len(data) != 1:
            raise ValidationError(
                "give exactly one of freezeAt, advance, advanceSeconds, resume, reset",
                field_name="(body)",
            )


@dataclass(frozen=True, slots=True)
class ClockChange:
    action: str  # freeze | advance | resume | reset
    at: datetime | None = None
    seconds: float = 0.0


def _int(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, **kwargs)


class FaultRuleSchema(_Strict):
    endpoint = fields.String(load_default=ANY, validate=validate.OneOf(FAULT_ENDPOINTS))
    workspace = fields.String(validate=validate.Length(min=1))
    feature_service = fields.String(data_key="featureService", validate=validate.Length(min=1))
    join_keys = fields.Dict(
        data_key="joinKeys",
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.Raw(),
        validate=validate.Length(min=1),
        metadata={"minProperties": 1},
    )
    status = _int(validate=validate.OneOf(FAULT_STATUSES))
    delay_ms = _int(data_key="delayMs", validate=validate.Range(min=0, max=MAX_DELAY_MS))
    times = _int(validate=validate.Range(min=1))
    probability = _Finite(validate=validate.Range(min=0, max=1))
    seed = _int()

    @validates_schema
    def _coherent(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("status") is None and not data.get("delay_ms"):
            raise ValidationError("a rule needs a status, a delayMs, or both", field_name="status")
        for key, value in (data.get("join_keys") or {}).items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValidationError(
                    f"the value of {key} must be a string or an integer", field_name="joinKeys"
                )
        if data.get("seed") is not None and data.get("probability") is None:
            raise ValidationError("a seed needs a probability", field_name="seed")


class ResetSchema(_Strict):
    workspace = fields.String(load_default=None, validate=validate.Length(min=1))
    scope = fields.String(load_default=VALUES, validate=validate.OneOf(SCOPES))


class JournalQuerySchema(_Strict):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_JOURNAL_LIMIT))
    endpoint = fields.String(validate=validate.OneOf(JOURNAL_ENDPOINTS))
    workspace = fields.String()
    feature_service = fields.String(data_key="featureService")
    status = fields.Integer(validate=validate.Range(min=100, max=599))


def _flatten(messages: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list):
        for message in messages:
            yield from _flatten(message, prefix)
    else:
        yield f"{prefix}: {messages}" if prefix else str(messages)


def _load(schema: Schema, data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise BadRequest(f"Invalid {what}: expected a JSON object.")
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        detail = "; ".join(sorted(_flatten(exc.messages)))
        raise BadRequest(f"Invalid {what}: {detail}") from None
    return loaded


def load_clock_change(data: Any) -> ClockChange:
    loaded = _load(ClockChangeSchema(), data, "clock change")
    if "freeze_at" in loaded:
        return ClockChange("freeze", at=loaded["freeze_at"])
    if "advance" in loaded:
        return ClockChange("advance", seconds=loaded["advance"])
    if "advance_seconds" in loaded:
        return ClockChange("advance", seconds=float(loaded["advance_seconds"]))
    return ClockChange("resume" if "resume" in loaded else "reset")


_API_NAMES = {"feature_service": "featureService", "join_keys": "joinKeys", "delay_ms": "delayMs"}


def load_fault_rule(data: Any) -> dict[str, Any]:
    """The rule in API spelling, without absent fields (as it is stored)."""
    loaded = _load(FaultRuleSchema(), data, "fault rule")
    return {_API_NAMES.get(k, k): v for k, v in loaded.items() if v is not None}


def load_reset(data: Any) -> tuple[str, str | None]:
    loaded = _load(ResetSchema(), data if data is not None else {}, "reset")
    return loaded["scope"], loaded["workspace"]


def load_journal_query(args: Mapping[str, str]) -> JournalQuery:
    loaded = _load(JournalQuerySchema(), dict(args), "journal query")
    return JournalQuery(
        limit=loaded["limit"],
        endpoint=loaded.get("endpoint"),
        workspace=loaded.get("workspace"),
        feature_service=loaded.get("feature_service"),
        status=loaded.get("status"),
    )

"""Checking a request's rows against the resolved service: join keys and request context, with
Tecton's 400 messages; and the store keys the rows name."""

from __future__ import annotations

from typing import Any

from app.errors import BadRequest
from app.serving.model import ResolvedService, StoreRead
from app.serving.params import Row
from app.store import canonical_key_part, entity_key
from app.types import ValueTypeError, coerce_value

# Canonical join-key values of one row, by request join-key name; None for a null key.
KeyParts = dict[str, str | None]


def join_key_parts(resolved: ResolvedService, row: Row) -> KeyParts:
    """Canonical join-key values of one row; Tecton's 400 messages for bad ones."""
    expected = resolved.join_keys
    names = [k.name for k in expected]
    for supplied in row.join_keys:
        if supplied not in names:
            raise BadRequest(f"Unknown join key: {supplied}, expected one of: [{' '.join(names)}]")
    parts: KeyParts = {}
    for key in expected:
        if key.name not in row.join_keys:
            raise BadRequest(f"Missing required join key: `{key.name}`")
        value = row.join_keys[key.name]
        if value is None:
            parts[key.name] = None
            continue
        if key.type.kind == "Int64":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise BadRequest(
                    f"Unexpected JSON type for {key.name} in joinKeyMap. Expected int64 or null."
                )
            try:
                parts[key.name] = canonical_key_part("Int64", coerce_value(key.type, value))
            except ValueTypeError:
                raise BadRequest(
                    f"Unexpected JSON type for {key.name} in joinKeyMap. Expected int64 or null."
                ) from None
        else:
            if not isinstance(value, str) or "\x00" in value:
                raise BadRequest(
                    f"Unexpected JSON type for {key.name} in joinKeyMap. Expected string or null."
                )
            parts[key.name] = value
    return parts


def request_context(resolved: ResolvedService, row: Row, ignore_extra: bool) -> dict[str, Any]:
    """The request-context values the service's realtime views take, as Python values."""
    expected = resolved.request_context_keys
    missing = [k.name for k in expected if row.request_context.get(k.name) is None]
    if missing:
        raise BadRequest(f"Expected key not found: [{' '.join(missing)}] in requestContextMap")
    context: dict[str, Any] = {}
    for key in expected:
        value = row.request_context[key.name]
        if ignore_extra and key.type.kind == "Struct" and isinstance(value, dict):
            declared = {name for name, _ in key.type.fields}
            value = {k: v for k, v in value.items() if k in declared}
        try:
            context[key.name] = coerce_value(key.type, value)
        except ValueTypeError as exc:
            raise BadRequest(f"Invalid value for {key.name} in requestContextMap: {exc}") from None
    return context


def store_key(read: StoreRead, parts: KeyParts) -> str | None:
    """The stored key `read` looks up for a row; None when one of its keys is null."""
    values: list[str] = []
    for name in read.key_names:
        value = parts[name]
        if value is None:
            return None
        values.append(value)
    return entity_key(values)

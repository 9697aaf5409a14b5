"""Checking a request's rows against the resolved service: join keys and request context, with
Tecton's 400 messages; and the store keys the rows name."""

from __future__ import annotations

from typing import Any

from app.errors import BadRequest
from app.serving.model import NameAndType, ResolvedService, StoreRead
from app.serving.params import Row
from app.store import canonical_key_part, entity_key
from app.types import ValueTypeError, coerce_value

# Canonical join-key values of one row, by request join-key name; None for a null key.
KeyParts = dict[str, str | None]


def join_key_parts(resolved: ResolvedService, row: Row) -> KeyParts:
    """Canonical join-key values of one row; Tecton's 400 messages for bad ones."""
    _check_names(resolved, row.join_keys)
    parts: KeyParts = {}
    for key in resolved.join_keys:
        if key.name not in row.join_keys:
            raise BadRequest(f"Missing required join key: `{key.name}`")
        parts[key.name] = _key_part(key, row.join_keys[key.name])
    return parts


def partial_key_parts(resolved: ResolvedService, join_keys: dict[str, Any]) -> KeyParts:
    """Canonical values of the join keys a partial-key request supplies (query-features)."""
    _check_names(resolved, join_keys)
    return {
        k.name: _key_part(k, join_keys[k.name]) for k in resolved.join_keys if k.name in join_keys
    }


def _check_names(resolved: ResolvedService, join_keys: dict[str, Any]) -> None:
    names = [k.name for k in resolved.join_keys]
    for supplied in join_keys:
        if supplied not in names:
            raise BadRequest(f"Unknown join key: {supplied}, expected one of: [{' '.join(names)}]")


def _key_part(key: NameAndType, value: Any) -> str | None:
    """One join key's canonical stored form ("007" and 7 are "7" for an Int64 key)."""
    if value is None:
        return None
    if key.type.kind == "Int64":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise BadRequest(
                f"Unexpected JSON type for {key.name} in joinKeyMap. Expected int64 or null."
            )
        try:
            return canonical_key_part("Int64", coerce_value(key.type, value))
        except ValueTypeError:
            raise BadRequest(
                f"Unexpected JSON type for {key.name} in joinKeyMap. Expected int64 or null."
            ) from None
    if not isinstance(value, str) or "\x00" in value:
        raise BadRequest(
            f"Unexpected JSON type for {key.name} in joinKeyMap. Expected string or null."
        )
    return value


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

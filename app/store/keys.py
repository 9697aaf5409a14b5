"""The online store's key encoding, shared by every writer (ingest, bulk load, demo) and reader.

A row is identified by (feature_view_id, entity_key). `entity_key` is the JSON array of the
view's join-key values as strings, in the view's join-key order: `["user_1"]`,
`["user_1","42"]`. Int64 keys are written in canonical decimal form, so `"042"`, `42` and
`"42"` name the same entity. A prefix of the array (without its closing bracket) selects every
entity whose leading keys match, which serves partial-key lookups.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson


def canonical_key_part(key_type: str, value: str | int) -> str:
    """One join-key value in stored form; the caller has already checked its type."""
    if key_type == "Int64":
        return str(int(value))
    return str(value)


def entity_key(parts: Sequence[str]) -> str:
    """The stored key for the canonical join-key values `parts` (in the view's key order)."""
    return orjson.dumps(list(parts)).decode()


def entity_key_prefix(leading_parts: Sequence[str]) -> str:
    """The stored-key prefix shared by every entity whose first keys are `leading_parts`."""
    return orjson.dumps(list(leading_parts)).decode()[:-1] + ("," if leading_parts else "")

"""Tecton's serving statuses, per feature in the response metadata."""

from __future__ import annotations

from typing import Literal

# What the store (or a realtime transform) answered for a view's features.
StoredStatus = Literal["PRESENT", "MISSING_DATA"]
# What the response says: the above, or the same from the feature cache.
ServingStatus = Literal["PRESENT", "MISSING_DATA", "CACHED_PRESENT", "CACHED_MISSING_DATA"]

CACHED: dict[StoredStatus, ServingStatus] = {
    "PRESENT": "CACHED_PRESENT",
    "MISSING_DATA": "CACHED_MISSING_DATA",
}

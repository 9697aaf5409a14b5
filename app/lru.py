"""A bounded mapping for per-process caches: anything a request can add to must not grow forever.

`LruDict` keeps at most `max_entries` entries and drops the least recently used one when a new
entry would exceed that; `touch` marks an entry used. Mutations are not locked here: callers
that share one between threads hold their own lock around every call (each call is short).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruDict(OrderedDict[K, V]):
    """An OrderedDict of at most `max_entries` entries, least recently used first."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        super().__init__()
        self.max_entries = max_entries

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.max_entries:
            self.popitem(last=False)

    def touch(self, key: K) -> None:
        """Mark `key` as just used (nothing when it is absent)."""
        if key in self:
            self.move_to_end(key)

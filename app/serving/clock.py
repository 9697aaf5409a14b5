"""The one "now" that serving and ingest use for ttl expiry and aggregation windows.

Until the emulator's clock (issue 13) is merged this is real time, with an in-process override
for tests (`set_now`); afterwards it delegates to `app.emulator.clock.now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime

_override: datetime | None = None


def now() -> datetime:
    return _override if _override is not None else datetime.now(UTC)


def set_now(moment: datetime | None) -> None:
    """Pin "now" in this process (None: real time again). For in-process tests only."""
    global _override
    _override = moment

"""The one "now" that serving and ingest use for ttl expiry, aggregation windows and the
feature-service cache: the emulator's clock (`app.emulator.clock.now()`), with an in-process
override for tests (`set_now`).
"""

from __future__ import annotations

from datetime import datetime

_override: datetime | None = None


def now() -> datetime:
    if _override is not None:
        return _override
    from app.emulator.clock import now as emulated_now  # the emulator builds on serving

    return emulated_now()


def set_now(moment: datetime | None) -> None:
    """Pin "now" in this process (None: the emulated clock again). For in-process tests only."""
    global _override
    _override = moment

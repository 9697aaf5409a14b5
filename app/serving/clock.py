"""The one "now" that serving and ingest use for ttl expiry, aggregation windows and the
feature-service cache: the emulator's clock (`app.emulator.clock.now()`), with an in-process
override for tests (`set_now`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.orm import Session

_override: datetime | None = None


def now() -> datetime:
    """The emulated "now" of the current server process (real time outside an app)."""
    if _override is not None:
        return _override
    from app.emulator.clock import now as emulated_now  # the emulator builds on serving

    return emulated_now()


def stored_now(connection: Connection | Session) -> datetime:
    """The emulated "now" read from the database, for commands that run outside a server
    (`tectonite ingest`, `import`): the same clock `/_emulator/clock` and `tectonite clock`
    set, so a frozen clock governs file loads as it governs the API."""
    if _override is not None:
        return _override
    from app.emulator.clock import read_clock

    bound = connection.connection() if isinstance(connection, Session) else connection
    return read_clock(bound).now()


def set_now(moment: datetime | None) -> None:
    """Pin "now" in this process (None: the emulated clock again). For in-process tests only."""
    global _override
    _override = moment

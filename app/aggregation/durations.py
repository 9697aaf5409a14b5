"""Durations as aggregate definitions spell them (`1h30m`, `-1d`) and as Tecton names them.

Everything is kept in whole microseconds, PostgreSQL's timestamp precision, so window bounds
and tile starts are exact integers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

SECOND_US = 1_000_000
_UNITS_US = {"d": 86_400 * SECOND_US, "h": 3_600 * SECOND_US, "m": 60 * SECOND_US, "s": SECOND_US}
_DURATION = re.compile(r"^(-)?((?:\d+[dhms])+)$")
_PART = re.compile(r"(\d+)([dhms])")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_duration_us(text: object) -> int:
    """`1d`, `1h30m`, `90s`, `-1d` → microseconds; raise ValueError otherwise."""
    spelling = str(text).strip().replace(" ", "")
    match = _DURATION.match(spelling)
    if not match:
        raise ValueError(
            f"invalid duration {text!r}; use numbers with d, h, m or s (e.g. 1h, 1h30m, 7d)"
        )
    total = sum(int(n) * _UNITS_US[unit] for n, unit in _PART.findall(match.group(2)))
    return -total if match.group(1) else total


def human_readable(duration_us: int) -> str:
    """Tecton's `to_human_readable_str`: total days, then h, m, s; zero parts and sub-seconds
    dropped; `0s` for nothing (reference §3.2)."""
    seconds = abs(duration_us) // SECOND_US
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    text = "".join(
        f"{value}{unit}"
        for value, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s"))
        if value
    )
    return text or "0s"


def to_us(moment: datetime) -> int:
    """A timezone-aware datetime → microseconds since the Unix epoch (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND_US + delta.microseconds


def from_us(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)

"""Logging set-up: human-readable lines, or one JSON object per line (LOG_FORMAT=json).

Nothing here ever logs request headers: API keys must never reach a log.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from app.config import Settings

LOGGER_NAME = "tectonite"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)  # structured fields (the access log's)
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return json_line(
            iso_time(record.created),
            record.levelname,
            record.name,
            record.getMessage(),
            fields if isinstance(fields, dict) else None,
            exception,
        )


def iso_time(created: float) -> str:
    """A record's `time` in JSON lines: UTC, ISO 8601, milliseconds."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def json_line(
    time: str,
    level: str,
    logger: str,
    message: str,
    fields: dict[str, Any] | None = None,
    exception: str | None = None,
) -> str:
    entry: dict[str, Any] = {
        "time": time,
        "level": level.lower(),
        "logger": logger,
        "message": message,
    }
    if fields:
        entry.update(fields)
    if exception:
        entry["exception"] = exception
    return orjson.dumps(entry).decode()


class LineHandler(logging.StreamHandler[TextIO]):
    """The stderr handler `configure_logging` attaches to the `tectonite` logger.

    `write_line` writes exactly what logging a record through this handler would, without the
    record: the access log's per-request path, where building the `LogRecord`, finding the
    caller and formatting the time cost twice the rest (bench/access_log.py).
    """

    def __init__(self, stream: TextIO, *, json_lines: bool) -> None:
        super().__init__(stream)
        self.json_lines = json_lines
        self.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
        # (a Unix second, its date and time in this handler's format); replaced whole, as threads
        # share the handler
        self._stamp: tuple[int, str] = (-1, "")

    def write_line(
        self,
        logger: str,
        level: int,
        message: str,
        fields: dict[str, Any],
        created: float | None = None,
    ) -> None:
        created = time.time() if created is None else created
        level_name = logging.getLevelName(level)
        second = int(created)
        if self.json_lines:
            # As `datetime.fromtimestamp` rounds: to the microsecond, half to even.
            microseconds = round((created - second) * 1_000_000)
            if microseconds >= 1_000_000:
                second, microseconds = second + 1, microseconds - 1_000_000
            stamp = f"{self._second_stamp(second)}.{microseconds // 1000:03d}+00:00"
            line = json_line(stamp, level_name, logger, message, fields)
        else:  # as `logging.Formatter`'s default `asctime`
            milliseconds = int((created - second) * 1000)
            stamp = f"{self._second_stamp(second)},{milliseconds:03d}"
            line = f"{stamp} {level_name} {logger}: {message}"
        self.acquire()
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        finally:
            self.release()

    def _second_stamp(self, second: int) -> str:
        """The date and time part of a line's time, computed once a second."""
        stamp = self._stamp
        if stamp[0] != second:
            text = (
                datetime.fromtimestamp(second, UTC).isoformat()[:19]
                if self.json_lines
                else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            )
            stamp = self._stamp = (second, text)
        return stamp[1]


def only_line_handler(logger: logging.Logger, level: int) -> LineHandler | None:
    """The handler a record of `level` on `logger` would reach, when it is the only one, is a
    `LineHandler` and nothing filters on the way; otherwise None (log the usual way)."""
    found: LineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, LineHandler) or handler.filters:
                return None
            if level < handler.level:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def configure_logging(settings: Settings) -> None:
    """Attach one stderr handler to the `tectonite` logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(settings.log_level.upper())
    for handler in [h for h in logger.handlers if isinstance(h, LineHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(LineHandler(sys.stderr, json_lines=settings.log_format == "json"))

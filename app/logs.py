"""Logging set-up: human-readable lines, or one JSON object per line (LOG_FORMAT=json).

Nothing here ever logs request headers: API keys must never reach a log.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from app.config import Settings

LOGGER_NAME = "tectonite"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)  # structured fields (the access log's)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(settings: Settings) -> None:
    """Attach one stderr handler to the `tectonite` logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(settings.log_level.upper())
    for handler in [h for h in logger.handlers if getattr(h, "_tectonite", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._tectonite = True  # type: ignore[attr-defined]  # our marker on a stdlib handler
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)

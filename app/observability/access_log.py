"""The access log: one line per request on the `tectonite.access` logger.

Fields: request id, method, path, endpoint (URL rule), workspace, service, status, duration and
the API key's id. Never the key, a header or a body. With LOG_FORMAT=json the fields are keys of
the line's JSON object (see `app.logs.JsonFormatter`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from app.logs import only_line_handler
from app.observability.request_ids import REQUEST_ID_ENVIRON_KEY
from app.security import PRINCIPAL_ENVIRON_KEY, WORKSPACE_ENVIRON_KEY

logger = logging.getLogger("tectonite.access")

SERVICE_ENVIRON_KEY = "tectonite.service"

Writer = Callable[[dict[str, Any], str, int, float], None]


def writer() -> Writer:
    """`write(environ, endpoint, status, seconds)`: log one request's line.

    Cheap by construction (measured by bench/access_log.py): nothing is built unless the logger
    is enabled, everything comes from the WSGI environ (no Flask proxy lookups), and the line is
    written straight to Tectonite's own handler when that is where it would go anyway.
    """
    is_enabled = logger.isEnabledFor

    def write(environ: dict[str, Any], endpoint: str, status: int, seconds: float) -> None:
        if not is_enabled(logging.INFO):
            return
        principal = environ.get(PRINCIPAL_ENVIRON_KEY)
        fields = {
            "request_id": environ.get(REQUEST_ID_ENVIRON_KEY),
            "method": environ.get("REQUEST_METHOD"),
            "path": _path(environ),
            "endpoint": endpoint,
            "workspace": environ.get(WORKSPACE_ENVIRON_KEY),
            "service": environ.get(SERVICE_ENVIRON_KEY),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "key_id": principal.key_id if principal is not None else None,
        }
        message = (
            f"{fields['method']} {fields['path']} {status} {seconds * 1000:.2f}ms "
            f"request_id={fields['request_id']} endpoint={endpoint} "
            f"workspace={fields['workspace']} service={fields['service']} "
            f"key_id={fields['key_id']}"
        )
        handler = only_line_handler(logger, logging.INFO)
        if handler is not None:
            handler.write_line(logger.name, logging.INFO, message, fields)
        else:
            logger.info("%s", message, extra={"fields": fields})

    return write


def _path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it (WSGI hands it over as latin-1)."""
    raw: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        return raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return raw

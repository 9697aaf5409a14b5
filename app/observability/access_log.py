"""The access log: one line per request on the `tectonite.access` logger.

Fields: request id, method, path, endpoint (URL rule), workspace, service, status, duration and
the API key's id. Never the key, a header or a body. With LOG_FORMAT=json the fields are keys of
the line's JSON object (see `app.logs.JsonFormatter`).
"""

from __future__ import annotations

import logging

from flask import g, request

from app.security import PRINCIPAL_ENVIRON_KEY, WORKSPACE_ENVIRON_KEY

logger = logging.getLogger("tectonite.access")

_TEXT = (
    "%(method)s %(path)s %(status)s %(duration_ms).2fms request_id=%(request_id)s "
    "endpoint=%(endpoint)s workspace=%(workspace)s service=%(service)s key_id=%(key_id)s"
)


def write(endpoint: str, status: int, seconds: float) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    environ = request.environ
    principal = environ.get(PRINCIPAL_ENVIRON_KEY)
    fields = {
        "request_id": g.get("request_id"),
        "method": request.method,
        "path": request.path,
        "endpoint": endpoint,
        "workspace": environ.get(WORKSPACE_ENVIRON_KEY),
        "service": environ.get("tectonite.service"),
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "key_id": principal.key_id if principal is not None else None,
    }
    logger.info(_TEXT, fields, extra={"fields": fields})

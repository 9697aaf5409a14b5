"""The error registry: every failure leaves as Tecton's `{"error", "code", "message"}` envelope.

Each error pairs an HTTP status with the gRPC code Tecton's gateway reports for it.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import orjson
import psycopg
from flask import Flask, Response, g
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from app.deadline import DeadlineReached

logger = logging.getLogger("tectonite.errors")


class ApiError(Exception):
    """Base of every error the API answers with; subclasses fix the status and gRPC code."""

    status: ClassVar[int] = 500
    code: ClassVar[int] = 13  # INTERNAL

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, 3  # INVALID_ARGUMENT


class Unauthenticated(ApiError):
    status, code = 401, 16  # UNAUTHENTICATED


class PermissionDenied(ApiError):
    status, code = 403, 7  # PERMISSION_DENIED


class NotFound(ApiError):
    status, code = 404, 5  # NOT_FOUND


class MethodNotAllowed(ApiError):
    status, code = 405, 12  # UNIMPLEMENTED


class RequestTimeout(ApiError):
    """The client did not send its whole request in time (the server's read timeout)."""

    status, code = 408, 4  # DEADLINE_EXCEEDED


class PayloadTooLarge(ApiError):
    status, code = 413, 8  # RESOURCE_EXHAUSTED


class TooManyRequests(ApiError):
    status, code = 429, 8  # RESOURCE_EXHAUSTED


class Unavailable(ApiError):
    status, code = 503, 14  # UNAVAILABLE


class DeadlineExceeded(ApiError):
    status, code = 504, 4  # DEADLINE_EXCEEDED


# Werkzeug's own exceptions (routing, body limits, ...) translated to the envelope.
_HTTP_EXCEPTIONS: dict[int, tuple[type[ApiError], str]] = {
    400: (BadRequest, "Bad Request"),
    404: (NotFound, "Not Found"),
    405: (MethodNotAllowed, "Method Not Allowed"),
    413: (PayloadTooLarge, "Request body is too large."),
    415: (BadRequest, "Bad Request"),
}

# SQLSTATEs that mean "the database is not there right now" or "it took too long".
_QUERY_CANCELED = "57014"


def envelope_body(message: str, code: int) -> bytes:
    """The envelope's bytes (also written by the HTTP server's own refusals, outside Flask)."""
    return orjson.dumps({"error": message, "code": code, "message": message})


def envelope(error: ApiError) -> Response:
    body = envelope_body(error.message, error.code)
    response = Response(body, status=error.status, mimetype="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, envelope)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(PoolTimeoutError, _handle_pool_timeout)
    app.register_error_handler(DBAPIError, _handle_database_error)
    app.register_error_handler(psycopg.Error, _handle_driver_error)
    app.register_error_handler(Exception, _handle_unexpected)


def _handle_http_exception(exc: HTTPException) -> Response:
    error_class, message = _HTTP_EXCEPTIONS.get(exc.code or 500, (ApiError, "Internal error"))
    error = error_class(message)
    if isinstance(error, MethodNotAllowed) and exc.valid_methods:  # type: ignore[attr-defined]  # only MethodNotAllowed has it
        error.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]  # only MethodNotAllowed has it
    return envelope(error)


def _handle_pool_timeout(_exc: PoolTimeoutError) -> Response:
    return envelope(
        TooManyRequests(
            "GetFeatures exceeded the concurrent request limit, please retry later",
            headers={"Retry-After": "1"},
        )
    )


def _handle_database_error(exc: DBAPIError) -> Response:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(exc.orig, DeadlineReached) or sqlstate == _QUERY_CANCELED:
        return envelope(DeadlineExceeded("Timed out"))
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        logger.warning("database unavailable: %s", type(exc.orig).__name__)
        return envelope(
            Unavailable("503 Service Temporarily Unavailable", headers={"Retry-After": "1"})
        )
    return _handle_unexpected(exc)


def _handle_driver_error(exc: psycopg.Error) -> Response:
    """Errors from the serving path's raw psycopg connection (outside SQLAlchemy)."""
    if isinstance(exc, DeadlineReached) or exc.sqlstate == _QUERY_CANCELED:
        return envelope(DeadlineExceeded("Timed out"))
    if isinstance(exc, psycopg.OperationalError):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return envelope(
            Unavailable("503 Service Temporarily Unavailable", headers={"Retry-After": "1"})
        )
    return _handle_unexpected(exc)


def _handle_unexpected(exc: Exception) -> Response:
    request_id = g.get("request_id", "-")
    logger.error("unexpected error (request id %s)", request_id, exc_info=exc)
    return envelope(ApiError(f"Internal error (request id {request_id})"))

"""The thin glue between Flask and `auth`: who is calling, may they, and Tecton's answers.

Endpoints call `authenticate()` first (401 before anything else, even before the body is
read) and `require_permission(workspace, permission)` before they look anything up, so a
key without a grant gets the same 403 whether or not the workspace or service exists.
"""

from __future__ import annotations

from flask import Flask, Response, request

from app import changes
from app.config import Settings
from app.db import get_database
from app.errors import PermissionDenied, TooManyRequests, Unauthenticated, envelope
from app.extensions import Slot
from auth.errors import AuthenticationFailed, PermissionDeniedError, TooManyFailures
from auth.permissions import Principal
from auth.verifier import Authenticator

AUTHENTICATOR = Slot[Authenticator]("tectonite.authenticator")
PRINCIPAL_ENVIRON_KEY = "tectonite.principal"
# The workspace a request asked for (as named; the access log reports it).
WORKSPACE_ENVIRON_KEY = "tectonite.workspace"


def init_app(app: Flask) -> None:
    """The app's authenticator; its credential cache is dropped on every "auth" change."""
    settings: Settings = app.extensions["tectonite.settings"]
    database = get_database(app)
    authenticator = Authenticator(connect=database.read, configured_secret=settings.secret)
    AUTHENTICATOR.register(app, authenticator)
    changes.get_feed(app).subscribe(changes.AUTH_TOPIC, authenticator.cache.invalidate)
    app.register_error_handler(AuthenticationFailed, _unauthenticated)
    app.register_error_handler(PermissionDeniedError, _permission_denied)
    app.register_error_handler(TooManyFailures, _too_many_failures)


def get_authenticator(app: Flask | None = None) -> Authenticator:
    return AUTHENTICATOR.get(app)


def authenticate() -> Principal:
    """The request's principal (verified once per request); raises for 401 and 429."""
    # Kept in the WSGI environ rather than `g`: an app context (and its `g`) may outlive a request.
    principal: Principal | None = request.environ.get(PRINCIPAL_ENVIRON_KEY)
    if principal is None:
        principal = get_authenticator().authenticate(
            request.headers.get("Authorization"),
            request.remote_addr or "-",
            use_cache=changes.get_feed().trustworthy(),
        )
        request.environ[PRINCIPAL_ENVIRON_KEY] = principal
    return principal


def require_permission(workspace_name: str, permission: str) -> Principal:
    """The principal, if it holds `permission` on `workspace_name`; otherwise 403."""
    principal = authenticate()
    request.environ[WORKSPACE_ENVIRON_KEY] = workspace_name
    if not principal.allows(permission, workspace_name):
        raise PermissionDeniedError()
    return principal


def _unauthenticated(_exc: AuthenticationFailed) -> Response:
    return envelope(
        Unauthenticated(AuthenticationFailed.message, headers={"WWW-Authenticate": "Tecton-key"})
    )


def _permission_denied(_exc: PermissionDeniedError) -> Response:
    return envelope(PermissionDenied(PermissionDeniedError.message))


def _too_many_failures(exc: TooManyFailures) -> Response:
    return envelope(
        TooManyRequests(
            TooManyFailures.message,
            headers={
                "Retry-After": str(exc.retry_after_seconds),
                "WWW-Authenticate": "Tecton-key",
            },
        )
    )

"""The console's session cookie and CSRF tokens.

The session is Flask's signed cookie, scoped to `/console` and used by nothing else, so the
serving API never opens, signs or sets a cookie. Its signing key is derived from the server
secret (`TECTONITE_SECRET`, or the HMAC key kept in `auth_secrets`), so every server process and
every instance on the same database accepts the same sessions, and rotating the secret ends them.

The cookie holds the signed-in key's *id* and a binding HMAC over the key's stored hash — never
the key: `load_signed_in` re-reads the key on each console request, so a deleted key, an
inactive account or a changed role takes effect on the next page.

Cookie flags: HttpOnly and SameSite=Strict always; Secure whenever the request came over TLS
(`serve --certfile/--keyfile`). On plain http the Secure flag is left off on purpose: a browser
drops a Secure cookie set over http on any host but `localhost`, which would make the console
unusable on `http://127.0.0.1:8328`.

CSRF: the synchronizer-token pattern. Each session carries a random token; every form posts it
back and `check_csrf` compares it in constant time before any console POST is handled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response, request, session
from flask.sessions import (
    NullSession,
    SecureCookieSession,
    SecureCookieSessionInterface,
    SessionMixin,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings
from app.db import get_database
from auth.store import ensure_server_secret, load_server_secret

COOKIE_NAME = "tectonite_console"
COOKIE_PATH = "/console"
# A signed-in session lasts at most this long, however active.
SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
_SALT = "tectonite-console-session"
_DERIVATION_LABEL = b"tectonite console session v1"
_BINDING_LABEL = b"tectonite console key binding v1"


class ConsoleSecret:
    """The console's signing key, derived once per process from the server secret."""

    def __init__(self, settings: Settings) -> None:
        self._configured = settings.secret
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        """The derived key; reads (or, on a fresh database, creates) the stored server secret."""
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = _derive(self._server_secret())
        return self._key

    def _server_secret(self) -> bytes:
        if self._configured:
            return self._configured.encode()
        database = get_database()
        with database.read() as connection:
            stored = load_server_secret(connection)
        if stored is None:
            # No key was ever created: make the secret now, as `api-key create` would.
            with database.session() as db_session:
                stored = ensure_server_secret(db_session)
                db_session.commit()
        return stored.encode()

    def key_binding(self, key_id: str, secret_hash: bytes) -> str:
        """Ties a session to one stored key: a key deleted and made again does not match."""
        message = key_id.encode() + b"\0" + secret_hash
        return hmac.new(self.key() + _BINDING_LABEL, message, hashlib.sha256).hexdigest()


def _derive(server_secret: bytes) -> bytes:
    return hmac.new(server_secret, _DERIVATION_LABEL, hashlib.sha256).digest()


def _is_console(req: Request) -> bool:
    return req.path == COOKIE_PATH or req.path.startswith(COOKIE_PATH + "/")


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, but only on `/console` and with the derived key."""

    def __init__(self, secret: ConsoleSecret) -> None:
        self.secret = secret

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        return URLSafeTimedSerializer(
            self.secret.key(),
            salt=_SALT,
            serializer=self.serializer,
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
        )

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not _is_console(request):
            return None  # Flask substitutes a NullSession: nothing to read or write
        try:
            serializer = self.get_signing_serializer(app)
        except SQLAlchemyError:
            return None  # no database, no secret: the console answers 503
        assert serializer is not None  # noqa: S101  (always built above)
        value = request.cookies.get(COOKIE_NAME)
        if not value:
            return self.session_class()
        try:
            data = serializer.loads(value, max_age=int(SESSION_LIFETIME.total_seconds()))
        except BadSignature:
            return self.session_class()
        return self.session_class(data)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if isinstance(session, NullSession):
            return
        super().save_session(app, session, response)

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME

    def get_cookie_path(self, app: Flask) -> str:
        return COOKIE_PATH

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def get_cookie_partitioned(self, app: Flask) -> bool:
        return False


def session_available() -> bool:
    """False when the session could not be opened (the database was unreachable)."""
    return not isinstance(session, NullSession)


def csrf_token() -> str:
    """This session's CSRF token, created on first use."""
    token: str | None = session.get(CSRF_FIELD)
    if token is None:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_valid(form: Any) -> bool:
    """Whether the posted form carries this session's token."""
    expected = session.get(CSRF_FIELD)
    presented = form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not isinstance(presented, str):
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())

"""Why a request or an administrative action was refused. Plain exceptions: no Flask, no `app`.

The web glue (`app.security`) turns the first three into Tecton's error envelopes; the CLI turns
`AuthAdminError` into a message on stderr.
"""

from __future__ import annotations

# Tecton's texts, verbatim (reference §16.3).
UNAUTHENTICATED_MESSAGE = (
    "invalid 'Tecton-key' authorization header. "
    "Note that newly created credentials may take up to 60 seconds to be usable."
)
PERMISSION_DENIED_MESSAGE = (
    "Not Authorized. Note that access control changes may take up to 60 seconds to apply."
)
TOO_MANY_FAILURES_MESSAGE = "Too many failed authentication attempts, please retry later"


class AuthenticationFailed(Exception):
    """No usable key: missing header, wrong scheme, malformed, unknown, expired or revoked.

    `reason` is for debug logs only (it never contains the key); every caller sees the same
    message so that failures reveal nothing about which check failed.
    """

    message = UNAUTHENTICATED_MESSAGE

    def __init__(self, reason: str = "invalid key") -> None:
        super().__init__(reason)
        self.reason = reason


class PermissionDeniedError(Exception):
    """A valid key whose service account lacks the permission on that workspace."""

    message = PERMISSION_DENIED_MESSAGE


class TooManyFailures(Exception):
    """This client failed authentication too often recently; answered 429 instead of 401."""

    message = TOO_MANY_FAILURES_MESSAGE

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class AuthAdminError(ValueError):
    """An administrative action (CLI) that cannot be done: unknown id, invalid role, ..."""

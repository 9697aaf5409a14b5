"""The API-key format: generation, cheap offline parsing, checksum and keyed hashing.

A key reads `tecto_<key id>_<secret><checksum>`:

- `tecto_`: a fixed prefix, so keys are recognisable (secret scanners, grep);
- key id: 32 lowercase hex characters, public; it is the `api_keys.id` shown by `api-key list`;
- secret: 43 base62 characters from `secrets` (62**43 > 2**256, so 256 bits of entropy);
- checksum: CRC32 of everything before it, 6 base62 characters. It is not security: it lets
  the server reject typos and look-alikes with 401 before touching the database.

Only `[A-Za-z0-9_]` appears, so a double click selects the whole key. Only
HMAC-SHA-256(server secret, secret) is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass
from datetime import timedelta

PREFIX = "tecto_"
KEY_ID_LENGTH = 32
SECRET_LENGTH = 43
CHECKSUM_LENGTH = 6
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_LENGTH = len(PREFIX) + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

_KEY_PATTERN = re.compile(
    rf"{PREFIX}(?P<key_id>[0-9a-f]{{{KEY_ID_LENGTH}}})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
_DURATION_PATTERN = re.compile(r"(?P<amount>[1-9][0-9]*)(?P<unit>[smhd])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class MalformedKey(ValueError):
    """The text is not a key of ours (wrong shape or checksum); nothing to look up."""


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key; `key` is shown once and never stored."""

    key: str
    key_id: str
    secret: str

    @property
    def obscured(self) -> str:
        return obscure(self.key)


def new_id() -> str:
    """A Tecton-style id: 32 lowercase hex characters (128 random bits)."""
    return secrets.token_hex(16)


def generate_key(key_id: str | None = None) -> NewKey:
    key_id = key_id or new_id()
    secret = "".join(secrets.choice(BASE62) for _ in range(SECRET_LENGTH))
    body = f"{PREFIX}{key_id}_{secret}"
    return NewKey(key=body + checksum(body), key_id=key_id, secret=secret)


def checksum(text: str) -> str:
    """CRC32 of `text` as 6 base62 characters (62**6 > 2**32)."""
    value = zlib.crc32(text.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def parse_key(text: str) -> ParsedKey:
    """Split a presented key into id and secret, or raise MalformedKey; no I/O."""
    match = _KEY_PATTERN.fullmatch(text)
    if match is None:
        raise MalformedKey("not a Tectonite API key")
    if not hmac.compare_digest(checksum(text[:-CHECKSUM_LENGTH]), match["checksum"]):
        raise MalformedKey("checksum mismatch")
    return ParsedKey(key_id=match["key_id"], secret=match["secret"])


def hash_secret(server_secret: bytes, secret: str) -> bytes:
    """HMAC-SHA-256: the secret has 256 bits, so a slow password hash would add only cost."""
    return hmac.new(server_secret, secret.encode("ascii"), hashlib.sha256).digest()


def secret_matches(server_secret: bytes, secret: str, stored_hash: bytes) -> bool:
    """Constant-time comparison of the presented secret's hash with the stored one."""
    return hmac.compare_digest(hash_secret(server_secret, secret), stored_hash)


def obscure(key: str) -> str:
    """How listings show a key: its last four characters only, as Tecton's SDK does."""
    return f"****{key[-4:]}"


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `45m`, `90s` → timedelta (for `--expires-in`)."""
    match = _DURATION_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}; use a number and s, m, h or d (e.g. 30d)")
    return timedelta(**{_DURATION_UNITS[match["unit"]]: int(match["amount"])})

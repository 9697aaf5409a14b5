"""What a workspace, feature-service or push-source name in a request may be.

Checked before anything is looked up: a name PostgreSQL cannot store (a NUL character) or one
longer than any stored name could be is answered 400 at once, and is never echoed back whole.
"""

from __future__ import annotations

# Longer than any name a definitions file would hold; bounds what per-process caches and error
# messages ever see of a request's names.
MAX_NAME_LENGTH = 256


def name_problem(name: str) -> str | None:
    """Why `name` cannot name anything, or None when it may."""
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    if "\x00" in name:
        return "contains a NUL character"
    return None

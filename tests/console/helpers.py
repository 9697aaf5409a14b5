"""Signing in to the console with Flask's test client, as a browser would."""

from __future__ import annotations

import re
from typing import Any

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: Any, key: str) -> Any:
    """Sign `client` in with `key`; returns the response to the POST."""
    page = client.get("/console/sign-in")
    token = csrf_of(page.get_data(as_text=True))
    return client.post("/console/sign-in", data={"api_key": key, "csrf_token": token})


def post_form(client: Any, path: str, data: dict[str, str]) -> Any:
    """POST a console form with the session's CSRF token taken from `path` itself."""
    token = csrf_of(client.get(path).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})

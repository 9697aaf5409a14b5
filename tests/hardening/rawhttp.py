"""Raw HTTP/1.1 over a socket, for requests no HTTP client library would send."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from dataclasses import dataclass

import orjson


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


def connect(base_url: str, timeout: float = 10) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_answer(sock: socket.socket, method: str = "GET") -> Answer:
    """Parse one response from `sock` (skipping 1xx), body included."""
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    body = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return Answer(response.status, headers, body)


def exchange(base_url: str, request: bytes, method: str = "GET") -> Answer:
    """Send `request` on a new connection and read the answer."""
    with connect(base_url) as sock:
        # The server may refuse (and close) before it has read everything.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        return read_answer(sock, method)


def read_until_closed(sock: socket.socket, within: float) -> bytes | None:
    """Everything the server sends until it closes `sock`; None if it is still open `within`
    seconds from now."""
    deadline = time.monotonic() + within
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            return None
        if not chunk:
            return data
        data += chunk


def is_envelope(body: object) -> bool:
    """Tecton's error envelope: `{"error", "code", "message"}`."""
    return (
        isinstance(body, dict)
        and set(body) == {"error", "code", "message"}
        and isinstance(body["code"], int)
        and isinstance(body["message"], str)
    )

"""The Flask application class: routing that never redirects, bodies whose size limit holds."""

from __future__ import annotations

import io
import typing as t
from typing import Any

from flask import Flask, Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import Map
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream


class _UrlMap(Map):
    """Routing that answers, never redirects: a path with `//` (a `%2F` in a v2 name, say) is
    matched as sent (404 in the JSON envelope) instead of an HTML 308 to a merged path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["merge_slashes"] = False
        super().__init__(*args, **kwargs)


class _AtMost(LimitedStream):
    """A body of unknown length (chunked) read up to the limit, then checked for more.

    Werkzeug's own stream stops quietly at the limit, so a chunked body over it reached the
    app truncated (a JSON syntax error, 400) instead of being refused with 413.
    """

    def __init__(self, stream: t.IO[bytes], limit: int) -> None:
        super().__init__(stream, limit, is_max=True)
        self._source = stream
        self._checked = False

    def readinto(self, b: bytearray) -> int | None:  # type: ignore[override]  # as LimitedStream
        count = super().readinto(b)
        if self.is_exhausted and not self._checked:
            self._checked = True
            if self._source.read(1):
                raise RequestEntityTooLarge()
        return count


class TectoniteRequest(Request):
    # Whether anything asked for the body. Code that runs after the view (the journal) must not
    # read a body the view never wanted: under granian that read would wait on a client that
    # may never send it (a 401 is answered, and the connection closed, without the body).
    body_requested = False

    @property
    def body_at_hand(self) -> bool:
        """Whether reading the body cannot wait long on the client: something read it already,
        or the server holds it or bounds the read (gunicorn's worker, test clients)."""
        source = self.environ.get("wsgi.input")
        return (
            self.body_requested
            or isinstance(source, io.BytesIO)
            or getattr(source, "bounded", False) is True
        )

    @cached_property
    def stream(self) -> t.IO[bytes]:
        self.body_requested = True
        limit = self.max_content_length
        terminated = self.environ.get("wsgi.input_terminated")
        if self.content_length is None and limit is not None and terminated:
            return t.cast(t.IO[bytes], _AtMost(self.environ["wsgi.input"], limit))
        return super().stream


class TectoniteFlask(Flask):
    url_map_class = _UrlMap
    request_class = TectoniteRequest

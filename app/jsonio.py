"""JSON in and out with orjson, and a bounded, strict parser for request bodies."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response, request
from flask.json.provider import JSONProvider

from app.errors import BadRequest

JSON_MIMETYPE = "application/json"


class OrjsonProvider(JSONProvider):
    """Flask's JSON provider on orjson; `response()` hands orjson's bytes straight to Response."""

    def dumps(self, obj: Any, **_kwargs: Any) -> str:
        return orjson.dumps(obj, option=orjson.OPT_UTC_Z).decode()

    def loads(self, s: str | bytes, **_kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return json_response(obj)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Encode `obj` with orjson into an application/json response."""
    body = orjson.dumps(obj, option=orjson.OPT_UTC_Z)
    return Response(body, status=status, headers=headers, mimetype=JSON_MIMETYPE)


def read_json_body() -> Any:
    """The request body parsed as JSON, whatever its Content-Type (Tecton does not check it).

    orjson rejects what Python's json would let through and later break on: NaN/Infinity
    literals, invalid UTF-8, lone surrogates, and nesting deeper than 1024 levels.
    """
    data = request.get_data(cache=True)
    if not data.strip():
        raise BadRequest("Request body is empty; expected a JSON object.")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Unable to parse request body as JSON: {exc}") from None


def init_app(app: Flask) -> None:
    app.json = OrjsonProvider(app)

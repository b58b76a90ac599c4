"""Every failure of the HTTP API as ``{"error": {"field": ..., "message": ...}}`` with a 4xx/5xx code.

Domain errors (:class:`koqa.errors.KoqaError`) are translated here and only here;
an unexpected exception is logged and answered with a plain 500 body, never a
traceback. Also the two guards that run before any route: the request body size
limit (413) and the optional API key (401).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Iterable

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from koqa.errors import InvalidInput, KoqaError, NotFound

log = logging.getLogger("koqa.api")

API_KEY_HEADER = "X-API-Key"


def error_response(status: int, field: str | None, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=status, headers=headers)


def field_name(loc: Iterable) -> str:
    """pydantic's ``("body", "inputs", "list[ReaderInput]", 0, "context")`` → ``"inputs[0].context"``."""
    name, loc = "", list(loc)
    if loc and loc[0] in ("body", "query", "path", "header"):  # where FastAPI found it (a field may be named "query")
        loc = loc[1:]
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif str(part)[:1].isupper() or "[" in str(part):  # union branch tags, not fields
            continue
        else:
            name += ("." if name else "") + str(part)
    return name or "body"


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "body", "malformed JSON: " + str(errors[0].get("ctx", {}).get("error", "")).strip())
    best = max(errors, key=lambda e: len(e.get("loc", ())))  # the most specific complaint
    msg = best.get("msg", "invalid value")
    return error_response(422, field_name(best.get("loc", ())), msg)


def _koqa_error(request: Request, exc: KoqaError) -> JSONResponse:
    if isinstance(exc, InvalidInput):
        return error_response(exc.status_code, exc.field, str(exc))
    if isinstance(exc, NotFound):
        return error_response(exc.status_code, exc.kind, str(exc))
    headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else None
    return error_response(exc.status_code, getattr(exc, "field", None), str(exc), headers)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if isinstance(detail, dict):
        return error_response(exc.status_code, detail.get("field"), str(detail.get("message", "")), exc.headers)
    return error_response(exc.status_code, None, str(detail), exc.headers)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, None, f"internal error ({type(exc).__name__}); see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(KoqaError, _koqa_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimit:
    """ASGI guard: a body over ``max_bytes`` gets 413, by Content-Length or while streaming."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _send_json(send, 413, "body", f"request body over {self.max_bytes} bytes")
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # FastAPI re-raises HTTPException from body reading; anything else would become a 400
                raise HTTPException(413, {"field": "body", "message": f"request body over {self.max_bytes} bytes"})
            return message

        return await self.app(scope, limited_receive, send)


class ApiKeyGuard:
    """ASGI guard: when a key is set, every path except the public ones needs ``X-API-Key``."""

    def __init__(self, app, api_key: str | None, public: tuple[str, ...] = ("/health",), public_prefixes=()):
        self.app, self.api_key = app, api_key
        self.public, self.public_prefixes = public, tuple(public_prefixes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.api_key or self._is_public(scope["path"]):
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers", ())).get(API_KEY_HEADER.lower().encode(), b"")
        if not hmac.compare_digest(given, self.api_key.encode()):
            return await _send_json(send, 401, API_KEY_HEADER, "missing or wrong API key",
                                    {"www-authenticate": API_KEY_HEADER})
        return await self.app(scope, receive, send)

    def _is_public(self, path: str) -> bool:
        return path in self.public or path.startswith(self.public_prefixes)


async def _send_json(send, status: int, field: str, message: str, headers: dict | None = None) -> None:
    body = json.dumps({"error": {"field": field, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

"""The seed's error envelope, request ids, and the one place errors become responses.

Every error response is ``{"error": {code, message, details, timestamp, request_id}}``.
``DepotError`` subclasses render with their own code and status; request validation
errors become 422 ``VALIDATION_ERROR`` with the offending fields (a body that is not JSON at
all is 400 ``MALFORMED_JSON``); unknown routes and
methods keep their 404/405 with the envelope; anything else is logged with the request id
and answered with a generic 500 that reveals nothing of the exception.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldepot.errors import DepotError

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_INCOMING_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class ErrorBody(BaseModel):
    code: str = Field(examples=["MODEL_NOT_FOUND"])
    message: str
    details: dict[str, Any]
    timestamp: datetime
    request_id: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


def error_response(
    *,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorEnvelope(
        error=ErrorBody(
            code=code,
            message=message,
            details=details or {},
            timestamp=datetime.now(UTC),
            request_id=request_id_var.get(),
        )
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


class RequestIdMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` if sane) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _INCOMING_ID_RE.match(incoming) else f"req_{secrets.token_hex(8)}"
        token = request_id_var.set(request_id)

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # The single place where an unexpected exception becomes a response: logged
            # with the request id, answered with a generic 500 (never str(exc)).
            if started or scope["type"] != "http":
                raise
            logger.error("Unhandled error [%s]", request_id, exc_info=exc)
            response = error_response(
                status=500,
                code="INTERNAL_ERROR",
                message="Internal server error; the log has details under this request id",
            )
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


async def _depot_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DepotError)
    if exc.status >= 500:
        logger.error("%s [%s]: %s", exc.code, request_id_var.get(), exc.message)
    return error_response(
        status=exc.status, code=exc.code, message=exc.message, details=exc.details
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    broken = [err for err in exc.errors() if err.get("type") == "json_invalid"]
    if broken:
        # A body that does not parse is a malformed request (400); 422 is for a body that
        # parses but does not validate.
        return error_response(
            status=400,
            code="MALFORMED_JSON",
            message="The request body is not valid JSON",
            details={"errors": [{"message": str(err.get("msg"))} for err in broken]},
        )
    errors = [
        {"field": ".".join(str(p) for p in err.get("loc", ())), "message": str(err.get("msg"))}
        for err in exc.errors()
    ]
    return error_response(
        status=422,
        code="VALIDATION_ERROR",
        message="The request is not valid",
        details={"errors": errors},
    )


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "ROUTE_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    if exc.status_code == 404:
        message = "No such endpoint"
    return error_response(
        status=exc.status_code, code=code, message=message, headers=dict(exc.headers or {})
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DepotError, _depot_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Malformed request (the body is not valid JSON)",
        404: "Not found",
        422: "Validation error",
        500: "Internal error",
    }.items()
}

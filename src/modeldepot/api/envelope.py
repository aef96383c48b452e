"""The seed's error envelope, request ids, and the one place errors become responses.

Every error response is ``{"error": {code, message, details, timestamp, request_id}}``.
``DepotError`` subclasses render with their own code and status; request validation
errors become 422 ``VALIDATION_ERROR`` with the offending fields (a body that is not JSON at
all is 400 ``MALFORMED_JSON``; a model, check or repair id in the path that breaks its
rule is 422 ``INVALID_MODEL_ID``, ``INVALID_CHECK_ID`` or ``INVALID_REPAIR_ID``); unknown
routes are 404 and a wrong method 405 with ``Allow`` (every documented method of the path),
in the envelope; anything else is logged with the request id and answered with a generic
500 that reveals nothing of the exception.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldepot.errors import DepotError, InvalidInput, InvalidModelId
from modeldepot.ids import (
    MODEL_ID_PATTERN,
    validate_check_id,
    validate_model_id,
    validate_repair_id,
)

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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
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
    if any(tuple(err.get("loc", ())) == ("path", "model_id") for err in exc.errors()):
        return _bad_model_id_in_path(request)
    for name, validate in _PATH_ID_RULES.items():
        if any(tuple(err.get("loc", ())) == ("path", name) for err in exc.errors()):
            return _bad_id_in_path(request, name, validate)
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


def _bad_model_id_in_path(request: Request) -> JSONResponse:
    """A path whose model id breaks the id rule: 405 if the path is another operation's
    (``GET .../{model_id}/check`` is the POST-only check, not a model id with a slash:
    ``{model_id:path}`` routes let such ids through so that ``../x`` is a 422, not a 404),
    else 422 ``INVALID_MODEL_ID`` as the services would answer."""
    allowed = _documented_methods(request)
    if allowed:
        return error_response(
            status=405,
            code=_HTTP_CODES[405],
            message="Method Not Allowed",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    try:
        validate_model_id(str(request.path_params.get("model_id", "")))
    except InvalidModelId as exc:
        return error_response(
            status=exc.status, code=exc.code, message=exc.message, details=exc.details
        )
    return error_response(status=422, code="INVALID_MODEL_ID", message="Invalid model id")


_PATH_ID_RULES: dict[str, Callable[[str], str]] = {
    "check_id": validate_check_id,
    "repair_id": validate_repair_id,
}
"""Path ids whose route publishes their pattern (so FastAPI refuses a bad one before the
service sees it): answered with the code the service would give, not VALIDATION_ERROR."""


def _bad_id_in_path(request: Request, name: str, validate: Callable[[str], str]) -> JSONResponse:
    try:
        validate(str(request.path_params.get(name, "")))
    except InvalidInput as exc:
        return error_response(
            status=exc.status, code=exc.code, message=exc.message, details=exc.details
        )
    return error_response(status=422, code="VALIDATION_ERROR", message=f"Invalid {name}")


def _documented_methods(request: Request) -> set[str]:
    """Methods of the published operations whose path, with valid ids, is this path."""
    model_id = MODEL_ID_PATTERN.removeprefix("^").removesuffix("$")
    allowed: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = "".join(
            model_id
            if part == "{model_id}"
            else "[^/]+"
            if part.startswith("{")
            else re.escape(part)
            for part in re.split(r"(\{\w+\})", template)
        )
        if re.fullmatch(pattern, request.scope["path"]):
            allowed |= {method.upper() for method in operations}
    return allowed


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


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = "No such endpoint"
    if exc.status_code == 405 and (allowed := _documented_methods(request)):
        # Starlette names only the first route of the path that matched; a path with an
        # operation per method (GET and POST /auth/keys) is several routes.
        headers["Allow"] = ", ".join(sorted(allowed))
    return error_response(status=exc.status_code, code=code, message=message, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DepotError, _depot_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


_RESPONSE_DESCRIPTIONS = {
    400: "Malformed request: the body is not valid JSON (MALFORMED_JSON)",
    404: "Not found: no such model, download, check or repair (the code says which)",
    409: "Conflict with the model's current state (the code says which)",
    422: "Validation error: the request parses but a field or the model id is invalid "
    "(details.errors names each field)",
    500: "Internal error (logged under the request id; nothing of it is revealed)",
    503: "The hub could not be reached, or has not been reached yet for this model",
    507: "Not enough room, a full disk or a read-only models directory "
    "(INSUFFICIENT_STORAGE, DISK_FULL, STORAGE_READ_ONLY)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: the error statuses it can answer (500 always),
    each with the envelope's schema. List exactly what the route can answer:
    ``tests/api/test_openapi.py`` provokes every listed status and only those."""
    return {
        status: {"model": ErrorEnvelope, "description": _RESPONSE_DESCRIPTIONS[status]}
        for status in sorted({*statuses, 500})
    }

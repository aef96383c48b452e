"""The service's error envelope read back into the service's own exception classes.

An answer ``{"error": {"code": "DOWNLOAD_IN_PROGRESS", "message": ..., "details": {...}}}``
raises ``modeldepot.errors.DownloadInProgress`` with that message and details, so the
SDK's caller catches exactly what the service raised, by its class or any base
(``Conflict``, ``DepotError``). The code -> class table is read off the classes
themselves (every ``DepotError`` subclass and its ``code``), never written by hand, so a
class added to the service is known here at once.

A code this client has no class for (a newer service) still raises something useful:

- the most specific class that every class of the answer's HTTP status derives from,
  when that class has the status too (an unknown 404 code is a ``NotFound``, an unknown
  409 a ``Conflict``); otherwise
- ``ServiceError`` (``code``, ``status``, ``details`` as answered).

In both cases the exception's class is a subclass made for the code, so ``error.code`` is
the code the service sent. The request id of the answer is attached as a note
(``add_note``): it shows in tracebacks and matches the service's log line.

Errors that happen on this side: ``modeldepot.errors.ServiceUnreachable`` (no answer:
refused, reset, timed out), ``UnexpectedResponse`` (an answer this client cannot read)
and ``WaitTimeout`` (``wait_until_available`` ran out of time; also a ``TimeoutError``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx

from modeldepot.errors import DepotError, ServiceUnreachable, UpstreamError
from modeldepot.upstream import parse_retry_after


class ServiceError(DepotError):
    """An error the service answered with a code this client has no class for; the
    instance's class carries the answered ``code`` and ``status``."""

    code = "SERVICE_ERROR"
    status = 500


class RateLimited(ServiceError):
    """429 ``RATE_LIMITED``, still after the retries the client's ``RetryPolicy`` allows."""

    code = "RATE_LIMITED"
    status = 429


class UnexpectedResponse(ServiceError):
    """A success answer this client could not read (not JSON, or not the expected shape):
    usually a proxy in the way, or a service of another version."""

    code = "UNEXPECTED_RESPONSE"
    status = 502


class WaitTimeout(DepotError, TimeoutError):
    """``wait_until_available`` waited its whole timeout without the model becoming
    available (also a ``TimeoutError``)."""

    code = "WAIT_TIMEOUT"
    status = 504


_WIRE_CLASSES_HERE = (RateLimited,)
"""This module's classes that name a code the service does send (the others name what
happens on this side and must not stand for a status)."""
_LOCAL_ONLY = (ServiceUnreachable,)
"""Service classes that never come over the wire (the CLI's "no service there")."""


def _subclasses(root: type[DepotError]) -> Iterator[type[DepotError]]:
    for cls in root.__subclasses__():
        if not vars(cls).get("_synthetic", False):
            yield cls
            yield from _subclasses(cls)


class _Registry:
    """``code -> class``, ``status -> fallback class``, and the classes made for codes
    this client does not know (made once each, so ``except`` on them works too)."""

    def __init__(self) -> None:
        every: list[type[DepotError]] = [DepotError, *_subclasses(DepotError)]
        wire = [
            cls
            for cls in every
            if not cls.__module__.startswith(__name__) or cls in _WIRE_CLASSES_HERE
        ]
        self.by_code: dict[str, type[DepotError]] = {}
        for cls in wire:
            self.by_code.setdefault(cls.code, cls)
        self.by_status: dict[int, type[DepotError]] = {}
        for status in {cls.status for cls in wire}:
            family = [cls for cls in wire if cls.status == status and cls not in _LOCAL_ONLY]
            common = _common_base(family)
            if common is not None and common.status == status:
                self.by_status[status] = common
        self._made: dict[tuple[type[DepotError], str, int], type[DepotError]] = {}
        self._mixed: dict[tuple[type[DepotError], type[Exception]], type[DepotError]] = {}

    def synthetic(self, base: type[DepotError], code: str, status: int) -> type[DepotError]:
        """A subclass of ``base`` whose ``code`` and ``status`` are the answered ones."""
        key = (base, code, status)
        if key not in self._made:
            name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", code))
            namespace = {"code": code, "status": status, "_synthetic": True}
            self._made[key] = type(name or "Error", (base,), {**namespace, "__module__": __name__})
        return self._made[key]

    def mixed(self, cls: type[DepotError], mix_in: type[Exception]) -> type[DepotError]:
        """``cls`` that is also a ``mix_in`` (same name: tracebacks read the same)."""
        key = (cls, mix_in)
        if key not in self._mixed:
            namespace = {"_synthetic": True, "__module__": __name__}
            self._mixed[key] = type(cls.__name__, (cls, mix_in), namespace)
        return self._mixed[key]


@functools.cache
def _registry() -> _Registry:
    """Built at first use: by then every module defining an error class is imported
    (the client imports them all)."""
    return _Registry()


def _common_base(family: list[type[DepotError]]) -> type[DepotError] | None:
    """The most derived DepotError class that every class of ``family`` is."""
    if not family:
        return None
    for candidate in family[0].__mro__:
        if issubclass(candidate, DepotError) and all(issubclass(c, candidate) for c in family):
            return candidate
    return None


def class_for(code: str, status: int) -> type[DepotError]:
    """The exception class for an answered ``code`` and HTTP ``status``."""
    registry = _registry()
    if (known := registry.by_code.get(code)) is not None:
        return known
    return registry.synthetic(registry.by_status.get(status, ServiceError), code, status)


def make_error(
    cls: type[DepotError], message: str, *, details: dict[str, Any], retry_after: float | None
) -> DepotError:
    """An instance of ``cls`` from the answer's fields, whatever its constructor takes
    (``ModelNotFound(model_id)`` rebuilds its message; the answered one is kept)."""
    error = cls.__new__(cls, message)
    DepotError.__init__(error, message, details=details)
    if isinstance(error, UpstreamError):
        error.retry_after = retry_after
    return error


def error_from_answer(
    status: int,
    body: bytes,
    *,
    retry_after: float | None = None,
    mix_in: type[Exception] | None = None,
) -> DepotError:
    """The exception an error answer (``status``, raw ``body``) stands for.

    ``mix_in``: a second base for the exception's class (the compatibility client makes
    its errors ``requests.HTTPError`` too).
    """
    fields = _envelope(body)
    if fields is None:  # not modeldepot's answer (a proxy's page): no class of ours fits
        text = body.decode("utf-8", "replace").strip()[:200]
        message = f"The service answered {status} without an error envelope: {text!r}"
        code, details, request_id = f"HTTP_{status}", dict[str, Any](), None
        cls = _registry().synthetic(ServiceError, code, status)
    else:
        code, message, details, request_id = fields
        cls = class_for(code, status)
    if mix_in is not None:
        cls = _registry().mixed(cls, mix_in)
    error = make_error(cls, message, details=details, retry_after=retry_after)
    if request_id:
        error.add_note(f"request id: {request_id}")
    return error


def error_from_response(
    response: httpx.Response, *, mix_in: type[Exception] | None = None
) -> DepotError:
    """``error_from_answer`` for an httpx response (its ``Retry-After`` included)."""
    return error_from_answer(
        response.status_code,
        response.content,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        mix_in=mix_in,
    )


def _envelope(body: bytes) -> tuple[str, str, dict[str, Any], str | None] | None:
    """``(code, message, details, request_id)`` of the seed's error envelope, or None."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None
    details = error.get("details")
    request_id = error.get("request_id")
    return (
        error["code"],
        str(error.get("message") or error["code"]),
        details if isinstance(details, dict) else {},
        request_id if isinstance(request_id, str) else None,
    )

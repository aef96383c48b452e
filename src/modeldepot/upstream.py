"""What an upstream HTTP answer means: one table from a status to the error tree.

Every caller that talks HTTP to the hub, a CDN or a URL source (transfers, the hub API
through huggingface_hub, the HEAD of a URL model) translates an error status here, so a
status means the same everywhere and its message says what a user should do::

    X-Error-Code (on a 4xx)  status    error                  what to do
    GatedRepo                any 4xx   UpstreamUnauthorized   accept the conditions, HF_TOKEN
    RepoNotFound             any 4xx   UpstreamNotFound       check the id, or HF_TOKEN
    RevisionNotFound         any 4xx   UpstreamNotFound       check the revision
    EntryNotFound            any 4xx   UpstreamNotFound       the file is not in it
    -                        401       UpstreamUnauthorized   set a valid HF_TOKEN
    -                        403       UpstreamUnauthorized   the token lacks access
    -                        404, 410  UpstreamNotFound       it does not exist
    -                        429       UpstreamRateLimited    wait (Retry-After is kept)
    -                        408, 5xx  UpstreamUnavailable    try again later
    -                        other     UpstreamProtocolError  the request was refused

Whether an error is worth another try is decided by its class (downloads/retry.py). A
refusal of a *signed* URL may only mean that the signature expired (``refusal_may_be_expiry``):
transfers then ask the hub for a fresh URL before believing it (RELIABILITY.md item 44).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from modeldepot.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)


class HeaderLookup(Protocol):
    """Response headers, case-insensitive (httpx, httpx2 and http.client all qualify)."""

    def get(self, key: str, /) -> str | None: ...


_Row = tuple[type[UpstreamError], str]

# Message templates: {what} names the thing asked for (a file, a repository, a URL),
# {where} the host that answered. Every message ends with " ({status})".
_BY_HUB_CODE: dict[str, _Row] = {
    "GatedRepo": (
        UpstreamUnauthorized,
        "This is a gated model ({what}): accept its conditions on the hub and set HF_TOKEN "
        "to a token that has access",
    ),
    "RepoNotFound": (
        UpstreamNotFound,
        "{what} does not exist on {where}, or it is private and HF_TOKEN is missing or has "
        "no access",
    ),
    "RevisionNotFound": (
        UpstreamNotFound,
        "The revision asked of {what} does not exist on {where}: check the revision in the "
        "catalogue",
    ),
    "EntryNotFound": (
        UpstreamNotFound,
        "{what} does not exist upstream at this revision",
    ),
}
_BY_STATUS: dict[int, _Row] = {
    401: (UpstreamUnauthorized, "{where} refused the credentials: set a valid HF_TOKEN"),
    403: (
        UpstreamUnauthorized,
        "Access denied by {where}: the token has no access to {what}; check HF_TOKEN and "
        "the model's access on the hub",
    ),
    404: (UpstreamNotFound, "{what} does not exist upstream"),
    410: (UpstreamNotFound, "{what} does not exist upstream"),
    429: (UpstreamRateLimited, "{where} is rate-limiting requests: wait and try again"),
    408: (UpstreamUnavailable, "{where} timed out the request: try again later"),
}
_SERVER_ERROR: _Row = (UpstreamUnavailable, "{where} has a problem: try again later")
_OTHER: _Row = (UpstreamProtocolError, "{where} refused the request for {what}")

HUB_ERROR_CODES = frozenset(_BY_HUB_CODE)


def status_error(
    status: int,
    headers: HeaderLookup | None = None,
    *,
    what: str,
    where: str,
    details: Mapping[str, Any] | None = None,
) -> UpstreamError:
    """The error for an answer with ``status`` (>= 400) and ``headers``.

    ``what`` names what was asked for ("weights/model.safetensors", "acme/tiny"), ``where``
    the host that answered. A server's Retry-After is kept on the error.
    """
    hub_code = (headers.get("x-error-code") if headers is not None else None) or ""
    kind, template = row_for(status, hub_code)
    retry_after = parse_retry_after(headers.get("retry-after") if headers is not None else None)
    message = template.format(what=what, where=where)
    return kind(
        f"{message} ({status})",
        details={**(details or {}), "status": status},
        retry_after=retry_after,
    )


def row_for(status: int, hub_code: str = "") -> _Row:
    """The error class and message template of (status, X-Error-Code): the table above."""
    if 400 <= status < 500 and hub_code in _BY_HUB_CODE:
        return _BY_HUB_CODE[hub_code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return _SERVER_ERROR
    return _OTHER


def refusal_may_be_expiry(status: int, headers: HeaderLookup, body: bytes = b"") -> bool:
    """Whether a CDN's refusal of a signed URL may just mean that the signature expired.

    S3 and CloudFront answer 403 ("Request has expired"), some CDNs 401 or 410, Google
    Cloud Storage 400 ``ExpiredToken``: a 400 counts only when it says "expired".
    """
    if status in (401, 403, 410):
        return True
    if status != 400:
        return False
    said = " ".join(
        [
            headers.get("x-error-message") or "",
            headers.get("x-amz-error-message") or "",
            headers.get("x-error-code") or "",
            body.decode("utf-8", "replace"),
        ]
    )
    return "expired" in said.lower()


def safe_url(url: str) -> str:
    """A URL fit for a message or a log: without its query (CDN signatures are credentials
    too)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

"""One translation of upstream HTTP statuses: the table, Retry-After, what counts as a
signed URL's expiry, and the same class from every caller over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from modeldepot.catalog.resolver import SourceResolver
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.downloads.sources import SourcePolicy, resolve
from modeldepot.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from modeldepot.testing import LocalHub, Status
from modeldepot.upstream import parse_retry_after, refusal_may_be_expiry, status_error
from tests.support import hub_entry

REPO = "acme/table"

# (status, X-Error-Code) -> class, and words the message must contain (what to do).
CASES: list[tuple[int, str | None, type[UpstreamError], str]] = [
    (401, None, UpstreamUnauthorized, "set a valid HF_TOKEN"),
    (403, None, UpstreamUnauthorized, "Access denied"),
    (404, None, UpstreamNotFound, "does not exist upstream (404)"),
    (410, None, UpstreamNotFound, "does not exist upstream (410)"),
    (429, None, UpstreamRateLimited, "wait and try again"),
    (408, None, UpstreamUnavailable, "try again later"),
    (500, None, UpstreamUnavailable, "try again later"),
    (502, None, UpstreamUnavailable, "(502)"),
    (503, None, UpstreamUnavailable, "(503)"),
    (400, None, UpstreamProtocolError, "refused the request"),
    (416, None, UpstreamProtocolError, "(416)"),
    (401, "GatedRepo", UpstreamUnauthorized, "gated model"),
    (403, "GatedRepo", UpstreamUnauthorized, "HF_TOKEN"),
    (401, "RepoNotFound", UpstreamNotFound, "private and HF_TOKEN"),
    (404, "RepoNotFound", UpstreamNotFound, "does not exist"),
    (404, "RevisionNotFound", UpstreamNotFound, "check the revision"),
    (404, "EntryNotFound", UpstreamNotFound, "does not exist upstream at this revision"),
    (500, "RepoNotFound", UpstreamUnavailable, "(500)"),  # a hub code only qualifies a 4xx
]


@pytest.mark.parametrize(("status", "code", "kind", "words"), CASES)
def test_status_table(status: int, code: str | None, kind: type[UpstreamError], words: str) -> None:
    headers = {"x-error-code": code} if code else {}
    error = status_error(status, headers, what="acme/x", where="hub.example", details={"k": 1})
    assert type(error) is kind
    assert words in error.message
    assert error.message.endswith(f"({status})")
    assert error.details == {"k": 1, "status": status}


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_kept_in_seconds_or_as_a_date(status: int) -> None:
    in_seconds = status_error(status, {"retry-after": "7"}, what="f", where="h")
    later = datetime.now(UTC) + timedelta(seconds=30)
    as_date = status_error(
        status, {"retry-after": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}, what="f", where="h"
    )
    assert in_seconds.retry_after == 7
    assert as_date.retry_after is not None
    assert 25 <= as_date.retry_after <= 30


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        (" 3 ", 3.0),
        ("soon", None),
        ("-5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    ("status", "headers", "body", "expiry"),
    [
        (403, {}, b"<Error><Code>AccessDenied</Code></Error>", True),
        (401, {}, b"", True),
        (410, {}, b"", True),
        (400, {}, b"<Code>ExpiredToken</Code><Message>The provided token has expired.", True),
        (400, {"x-amz-error-message": "Request has expired"}, b"", True),
        (400, {}, b"<Code>InvalidArgument</Code>", False),
        (404, {}, b"", False),
        (429, {}, b"", False),
        (500, {}, b"expired", False),
    ],
)
def test_what_may_be_a_signed_urls_expiry(
    status: int, headers: dict[str, str], body: bytes, expiry: bool
) -> None:
    assert refusal_may_be_expiry(status, headers, body) is expiry


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.mark.parametrize(("status", "code", "kind", "words"), CASES)
async def test_every_caller_gives_the_same_class(
    status: int,
    code: str | None,
    kind: type[UpstreamError],
    words: str,
    local_hub: LocalHub,
    http: httpx.AsyncClient,
) -> None:
    local_hub.create_repo(REPO, {"config.json": b"{}"})
    file_url = f"{local_hub.endpoint}/{REPO}/resolve/main/config.json"
    local_hub.faults.add(Status(status, error_code=code), server="hub")
    resolver = SourceResolver(endpoint=local_hub.endpoint, token=None, timeout=5, http=http)
    policy = SourcePolicy(hub_url=local_hub.endpoint)

    with pytest.raises(UpstreamError) as transfer:
        await resolve(http, file_url, policy=policy, token=None)
    with pytest.raises(UpstreamError) as hub_api:
        await resolver.resolve(hub_entry("table", REPO))
    with pytest.raises(UpstreamError) as url_head:
        await resolver.resolve(CatalogEntry(id="single", source=file_url))

    for raised in (transfer, hub_api, url_head):
        assert type(raised.value) is kind, raised.value.message
        assert words in raised.value.message
        assert raised.value.details["status"] == status

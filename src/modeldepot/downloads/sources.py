"""Where bytes come from: SSRF policy, redirect-by-redirect resolution, HTTP error meaning.

* Only ``http``/``https``. A host is refused when any address it resolves to is loopback,
  private, link-local (cloud metadata), multicast, reserved or unspecified, IPv4-mapped
  IPv6 included, unless the host is the configured hub's or listed in
  ``allowed_source_hosts`` (RELIABILITY.md items 6-7). Every redirect hop is re-checked.
  The check resolves names before connecting; a DNS answer that changes between the check
  and the connection is not covered (documented limit).
* The hub token is sent only to the hub's own origin, never to a CDN or across a
  cross-host redirect (item 8). Redirect loops and chains over ``MAX_REDIRECTS`` fail
  cleanly (item 9).
* Status codes become errors that say what to do (gated model, bad token, missing file).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from modeldepot.downloads.retry import parse_retry_after
from modeldepot.errors import (
    DepotError,
    RedirectError,
    TransferInterrupted,
    UnsafeSource,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

MAX_REDIRECTS = 10


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class SourcePolicy:
    """Which hosts transfers may contact."""

    hub_url: str
    allowed_hosts: frozenset[str] = frozenset()

    def trusted(self, host: str) -> bool:
        return host == origin(self.hub_url)[1] or host in self.allowed_hosts

    async def check(self, url: str) -> None:
        """Refuse ``url`` unless its scheme and every resolved address are acceptable.

        Raises:
            UnsafeSource: bad scheme, no host, or a private/loopback/metadata address.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeSource(f"Refusing source URL scheme '{parts.scheme}'", details={"url": url})
        host = parts.hostname.lower()
        if self.trusted(host):
            return
        for address in await _addresses(host, parts.port or 443):
            if _is_internal(address):
                raise UnsafeSource(
                    f"Refusing {host}: it resolves to an internal address ({address}); "
                    "allow it with the allowed_source_hosts setting",
                    details={"host": host},
                )


async def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UpstreamUnavailable(f"Cannot resolve {host}: {exc.strerror}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class ResolvedSource:
    """The URL the bytes are fetched from, after redirects, with what the servers said."""

    url: str
    size: int | None
    etag: str | None
    accepts_ranges: bool


def auth_headers(url: str, *, hub_url: str, token: str | None) -> dict[str, str]:
    """The hub token, only for the hub's own origin."""
    if token and origin(url) == origin(hub_url):
        return {"Authorization": f"Bearer {token}"}
    return {}


async def resolve(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: SourcePolicy,
    token: str | None,
) -> ResolvedSource:
    """Follow redirects from ``url`` by hand (HEAD), checking each hop.

    Raises:
        UnsafeSource: a hop is refused by the policy.
        UpstreamError: an error status, a loop, or too many redirects.
    """
    seen: set[str] = set()
    linked_size: int | None = None
    linked_etag: str | None = None
    for _hop in range(MAX_REDIRECTS + 1):
        await policy.check(url)
        if url in seen:
            raise RedirectError("Redirect loop", details={"url": _safe(url)})
        seen.add(url)
        headers = {"Accept-Encoding": "identity"} | auth_headers(
            url, hub_url=policy.hub_url, token=token
        )
        response = await request(client, "HEAD", url, headers=headers)
        # The hub states the LFS file's size and sha256 on the redirect itself.
        linked_size = _int(response.headers.get("x-linked-size")) or linked_size
        linked_etag = response.headers.get("x-linked-etag") or linked_etag
        if response.is_redirect:
            location = response.headers.get("location")
            if not location:
                raise UpstreamProtocolError(
                    "Redirect without a Location", details={"url": _safe(url)}
                )
            url = urljoin(url, location)
            continue
        raise_for_status(response, url=url)
        return ResolvedSource(
            url=url,
            size=_int(response.headers.get("content-length")) or linked_size,
            etag=response.headers.get("etag") or linked_etag,
            accepts_ranges=response.headers.get("accept-ranges", "").lower() == "bytes",
        )
    raise RedirectError(f"More than {MAX_REDIRECTS} redirects", details={"url": _safe(url)})


async def request(
    client: httpx.AsyncClient, method: str, url: str, *, headers: dict[str, str]
) -> httpx.Response:
    """One request without a body to read, with transport errors translated."""
    try:
        return await client.request(method, url, headers=headers, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{_host(url)} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise TransferInterrupted(f"Connection to {_host(url)} failed: {exc}") from exc


def raise_for_status(response: httpx.Response, *, url: str) -> None:
    """Translate an error status into the error tree, with the reason a person needs.

    Raises:
        UpstreamError: for every status >= 400 (subclass by meaning).
    """
    status = response.status_code
    if status < 400:
        return
    raise status_error(status, response.headers, url=url)


class HeaderLookup(Protocol):
    def get(self, key: str, /) -> str | None: ...


def status_error(status: int, headers: HeaderLookup, *, url: str) -> DepotError:
    hub_code = headers.get("x-error-code") or ""
    retry_after = parse_retry_after(headers.get("retry-after"))
    where = {"url": _safe(url), "status": status}
    if hub_code == "GatedRepo":
        return UpstreamUnauthorized(
            "This is a gated model: accept its conditions on the hub and set HF_TOKEN "
            f"to a token that has access ({status})",
            details=where,
        )
    if status == 401:
        return UpstreamUnauthorized(
            f"The server refused the credentials (401): set a valid HF_TOKEN ({_host(url)})",
            details=where,
        )
    if status == 403:
        return UpstreamUnauthorized(
            f"Access denied (403) by {_host(url)}: the token has no access to this file",
            details=where,
        )
    if status in (404, 410):
        what = "repository" if hub_code == "RepoNotFound" else "file"
        return UpstreamNotFound(f"The {what} does not exist upstream ({status})", details=where)
    if status == 429:
        return UpstreamRateLimited(
            f"{_host(url)} is rate-limiting (429)", details=where, retry_after=retry_after
        )
    if status >= 500 or status == 408:
        return UpstreamUnavailable(
            f"{_host(url)} answered {status}", details=where, retry_after=retry_after
        )
    return UpstreamProtocolError(f"{_host(url)} answered {status}", details=where)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the server"


def _safe(url: str) -> str:
    """A URL without its query (CDN signatures are credentials too)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


__all__ = [
    "ResolvedSource",
    "SourcePolicy",
    "UpstreamError",
    "auth_headers",
    "raise_for_status",
    "resolve",
    "status_error",
]

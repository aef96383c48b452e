"""Where bytes come from: SSRF policy, redirect-by-redirect resolution, renewing signed URLs.

* Only ``http``/``https``. A host is refused when any address it resolves to is loopback,
  private, link-local (cloud metadata), multicast, reserved or unspecified, IPv4-mapped
  IPv6 included, unless the host is the configured hub's or listed in
  ``allowed_source_hosts`` (RELIABILITY.md items 6-7). Every redirect hop is re-checked.
  The check resolves names before connecting; a DNS answer that changes between the check
  and the connection is not covered (documented limit).
* The hub token is sent only to the hub's own origin, never to a CDN or across a
  cross-host redirect (item 8). Redirect loops and chains over ``MAX_REDIRECTS`` fail
  cleanly (item 9).
* Status codes become errors that say what to do (gated model, bad token, missing file)
  through the one table in modeldepot/upstream.py.
* The URL a file's bytes come from is a ``SourceLink``: signed CDN URLs expire (the hub's
  after about an hour), so a refusal of a redirected URL makes the file's connections wait
  for one fresh resolution, then continue where they were (item 44).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from modeldepot.errors import (
    RedirectError,
    TransferInterrupted,
    UnsafeSource,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from modeldepot.upstream import HeaderLookup, refusal_may_be_expiry, safe_url, status_error

MAX_REDIRECTS = 10
MAX_RENEWALS = 256
"""Fresh URLs one file fetch may ask for: a 1-hour signature lasts for 10 days of transfer."""
ERROR_BODY_PEEK = 4096  # enough of a 400's body to see whether it says "expired"


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
            UpstreamUnavailable: the host name does not resolve.
        """
        target = self._untrusted_target(url)
        if target is None:
            return
        host, port = target
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise UpstreamUnavailable(f"Cannot resolve {host}: {exc.strerror}") from exc
        _refuse_internal(host, infos)

    def check_blocking(self, url: str) -> None:
        """``check`` for a worker thread (a small file follows its redirects there).

        Raises:
            UnsafeSource, UpstreamUnavailable: as ``check``.
        """
        target = self._untrusted_target(url)
        if target is None:
            return
        host, port = target
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UpstreamUnavailable(f"Cannot resolve {host}: {exc.strerror}") from exc
        _refuse_internal(host, infos)

    def _untrusted_target(self, url: str) -> tuple[str, int] | None:
        """(host, port) whose addresses must be checked; None for a trusted host.

        Raises:
            UnsafeSource: bad scheme or no host.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeSource(f"Refusing source URL scheme '{parts.scheme}'", details={"url": url})
        try:
            port = parts.port
        except ValueError as exc:  # not a number, or out of range
            raise UnsafeSource(
                f"Refusing a source URL with a malformed port: {exc}",
                details={"url": safe_url(url)},
            ) from exc
        host = parts.hostname.lower()
        if self.trusted(host):
            return None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host, port or 443
        _refuse_internal(host, [(0, 0, 0, "", (str(address), 0))])
        return None


_AddrInfo = tuple[Any, Any, Any, str, tuple[Any, ...]]


def _refuse_internal(host: str, infos: Sequence[_AddrInfo]) -> None:
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if _is_internal(address):
            raise UnsafeSource(
                f"Refusing {host}: it resolves to an internal address ({address}); "
                "allow it with the allowed_source_hosts setting",
                details={"host": host},
            )


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
    redirected: bool = False
    """The URL came from a redirect (a CDN's, maybe signed), not the asked URL itself."""


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
    what: str | None = None,
) -> ResolvedSource:
    """Follow redirects from ``url`` by hand (HEAD), checking each hop. ``what`` names the
    file in error messages (the URL's last path segment if None).

    Raises:
        UnsafeSource: a hop is refused by the policy.
        UpstreamError: an error status, a loop, or too many redirects.
    """
    seen: set[str] = set()
    linked_size: int | None = None
    linked_etag: str | None = None
    what = what or _name(url)
    for hop in range(MAX_REDIRECTS + 1):
        await policy.check(url)
        if url in seen:
            raise RedirectError("Redirect loop", details={"url": safe_url(url)})
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
                    "Redirect without a Location", details={"url": safe_url(url)}
                )
            url = urljoin(url, location)
            continue
        raise_for_status(response, url=url, what=what)
        return ResolvedSource(
            url=url,
            size=_int(response.headers.get("content-length")) or linked_size,
            etag=response.headers.get("etag") or linked_etag,
            accepts_ranges=response.headers.get("accept-ranges", "").lower() == "bytes",
            redirected=hop > 0,
        )
    raise RedirectError(f"More than {MAX_REDIRECTS} redirects", details={"url": safe_url(url)})


async def request(
    client: httpx.AsyncClient, method: str, url: str, *, headers: dict[str, str]
) -> httpx.Response:
    """One request without a body to read, with transport errors translated."""
    try:
        return await client.request(method, url, headers=headers, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{host_of(url)} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise TransferInterrupted(f"Connection to {host_of(url)} failed: {exc}") from exc


def raise_for_status(response: httpx.Response, *, url: str, what: str | None = None) -> None:
    """Translate an error status into the error tree, with the reason a person needs.

    Raises:
        UpstreamError: for every status >= 400 (subclass by meaning, modeldepot/upstream.py).
    """
    if response.status_code < 400:
        return
    raise status_error(
        response.status_code,
        response.headers,
        what=what or _name(url),
        where=host_of(url),
        details={"url": safe_url(url)},
    )


@dataclass(frozen=True)
class LinkRequest:
    """One request made with a ``SourceLink``'s URL of ``generation``."""

    url: str
    generation: int
    redirected: bool


class SourceRefused(Exception):
    """Control flow: a server refused the link's URL (perhaps only because it expired)."""

    def __init__(self, error: UpstreamError, *, generation: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.generation = generation


class SourceLink:
    """The URL one file's bytes come from right now, renewed when a CDN refuses it.

    A refused request raises ``SourceRefused`` with the link ``generation`` it used; its
    connection calls ``renew``. Connections refused together wait for one renewal (single
    flight), then continue their segments with the new URL. A refusal is believed (its
    error raised) when the URL is not a redirect target (nothing to renew), when a URL
    from a renewal was refused on every request made with it ("refused at once": renewing
    again cannot help), or after ``MAX_RENEWALS``. The first URL is renewed once even if
    never accepted: it may have waited (for a connection slot, for the re-fetch after a
    checksum mismatch) longer than it lived. So every other renewal follows a request the
    server accepted, and renewals are bounded without counting as retries (they are not
    failures).

    The worker threads report each request they send and whether its answer was accepted
    (``request_sent`` / ``request_answered``, thread-safe); a refusal is judged only after
    every request already sent with the same URL has been answered.
    """

    def __init__(
        self, source: ResolvedSource, *, renew: Callable[[], Awaitable[ResolvedSource]]
    ) -> None:
        self.source = source
        self.generation = 0  # how often the URL was renewed
        self._renew = renew
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._accepted = False  # a request with the current URL was accepted
        self._pending = 0  # requests with the current URL not answered yet
        self._answered = asyncio.Event()

    @property
    def url(self) -> str:
        return self.source.url

    def request(self) -> LinkRequest:
        """The URL to use now, with what judging its answer needs."""
        return LinkRequest(self.url, self.generation, self.source.redirected)

    def request_sent(self, generation: int) -> None:
        """Any thread: a request with the URL of ``generation`` is about to be sent."""
        self._report(generation, 1, accepted=False)

    def request_answered(self, generation: int, *, accepted: bool) -> None:
        """Any thread: that request was answered (``accepted``: a 2xx), or failed."""
        self._report(generation, -1, accepted=accepted)

    def _report(self, generation: int, delta: int, *, accepted: bool) -> None:
        # A loop already closed has nobody left to judge a refusal: nothing to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._count, generation, delta, accepted)

    def _count(self, generation: int, delta: int, accepted: bool) -> None:
        if generation != self.generation:
            return  # an answer about a URL already replaced
        self._pending += delta
        self._accepted = self._accepted or accepted
        self._answered.set()

    async def renew(self, refused: SourceRefused) -> None:
        """Return once a URL newer than the refused one is in place.

        Raises:
            UpstreamError: the refusal is real (see the class); or what resolving raised.
        """
        async with self._lock:
            if refused.generation != self.generation:
                return  # another connection renewed it meanwhile
            if not self.source.redirected or self.generation >= MAX_RENEWALS:
                raise refused.error
            if self.generation > 0 and not await self._was_accepted():
                raise refused.error
            source = await self._renew()
            self.source = source
            self.generation += 1
            self._accepted = False
            self._pending = 0

    async def _was_accepted(self) -> bool:
        """Whether the current URL was accepted once; waits for the answers of requests
        already sent with it (the refused request's own answer was reported before it
        raised), so a refusal racing an acceptance on another connection is not believed."""
        while not self._accepted and self._pending > 0:
            self._answered.clear()
            await self._answered.wait()
        return self._accepted


def refusal(
    request: LinkRequest,
    status: int,
    headers: HeaderLookup,
    *,
    what: str,
    read_body: Callable[[int], bytes],
) -> UpstreamError | SourceRefused:
    """What an error answer to ``request`` means: a final error, or (a redirect target that
    may only have expired) a ``SourceRefused`` that renews the link. ``read_body`` is
    called only for a 400, whose body may say "expired"."""
    error = status_error(
        status,
        headers,
        what=what,
        where=host_of(request.url),
        details={"url": safe_url(request.url)},
    )
    if not request.redirected:
        return error
    body = read_body(ERROR_BODY_PEEK) if status == 400 else b""
    if refusal_may_be_expiry(status, headers, body):
        return SourceRefused(error, generation=request.generation)
    return error


def response_refusal(
    request: LinkRequest, response: http.client.HTTPResponse, *, what: str
) -> UpstreamError | SourceRefused:
    """:func:`refusal` for a blocking ``http.client`` answer (body peeked only for a 400)."""

    def peek(limit: int) -> bytes:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return response.read(limit)
        return b""

    return refusal(request, response.status, response.headers, what=what, read_body=peek)


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "the server"


def _name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or safe_url(url)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


__all__ = [
    "LinkRequest",
    "ResolvedSource",
    "SourceLink",
    "SourcePolicy",
    "SourceRefused",
    "auth_headers",
    "host_of",
    "raise_for_status",
    "refusal",
    "resolve",
    "safe_url",
]

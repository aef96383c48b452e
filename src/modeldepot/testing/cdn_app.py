"""The local CDN: LFS blobs by sha256, as the hub's redirect targets.

``GET|HEAD /blobs/{sha256}`` serves ``<root>/blobs/<sha256>`` with Range, If-Range, ETag
(the quoted sha256) and Last-Modified, streamed from disk. The hub's 302 adds
``?repo=...&file=...``; they name the download in Content-Disposition and let fault rules
match by repo and file name. When the hub signs its redirects (``signed_url_ttl``, see
`modeldepot.testing.signing`) the query also carries ``Expires``, ``Signature`` and
``Key-Pair-Id``, checked when a request starts: expired or invalid -> 403 with S3's XML
``AccessDenied`` "Request has expired" / "Access denied". The CDN ignores Authorization,
as a signed-URL CDN does, but every request is recorded so tests can check a token never
reached it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from modeldepot.testing.dispatch import HubState, path_segments
from modeldepot.testing.wire import Exchange, FileSource, Scope, send_bytes, send_file

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class CdnRoute:
    sha256: str | None
    repo: str | None
    filename: str | None


class CdnApp:
    """Serves LFS blobs from the shared blob store."""

    def __init__(self, state: HubState) -> None:
        self.state = state

    def route(self, scope: Scope) -> CdnRoute:
        segments = path_segments(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        sha256 = segments[1] if len(segments) == 2 and segments[0] == "blobs" else None
        if sha256 is not None and not _SHA256_RE.fullmatch(sha256):
            sha256 = None
        return CdnRoute(
            sha256=sha256,
            repo=query.get("repo", [None])[-1],
            filename=query.get("file", [None])[-1],
        )

    async def handle(self, exchange: Exchange, route: CdnRoute) -> None:
        if exchange.method not in ("GET", "HEAD"):
            await _s3_error(exchange, 405, "MethodNotAllowed")
            return
        refusal = self.state.signer.refusal(exchange.record.path, exchange.record.query)
        if refusal is not None:
            await _s3_error(exchange, 403, "AccessDenied", refusal)
            return
        path = self.state.store.lfs_path(route.sha256) if route.sha256 else None
        if path is None or not path.is_file():
            await _s3_error(exchange, 404, "NoSuchKey")
            return
        headers = [("content-type", "application/octet-stream")]
        if route.filename:
            name = route.filename.rsplit("/", 1)[-1].replace('"', "")
            headers.append(("content-disposition", f'attachment; filename="{name}"'))
        source = FileSource(path)
        try:
            await send_file(
                exchange,
                source,
                etag=route.sha256 or "",
                last_modified=source.mtime,
                headers=headers,
            )
        finally:
            source.close()


async def _s3_error(exchange: Exchange, status: int, code: str, message: str = "") -> None:
    text = f"<Message>{message}</Message>" if message else ""
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>{text}</Error>"
    ).encode()
    await send_bytes(exchange, status, body, content_type="application/xml")

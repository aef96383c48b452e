"""``/``: the web dashboard, static files shipped in the package (issue 13).

::

    src/modeldepot/dashboard/static/
      index.html          served at /
      style.css           /dashboard/style.css
      app.js              /dashboard/app.js (an ES module; it imports the others)
      *.js, views/*.js    /dashboard/<path>

No build step and nothing from elsewhere: the service's Content-Security-Policy
(``default-src 'self'``, ``modeldepot.api.guards``) allows only same-origin files, so the
page has no inline script or style. The files are read on each request (small, on a
worker thread) and answered with a strong ``ETag`` and ``Cache-Control: no-cache``: a
browser revalidates and gets 304 while nothing changed, and sees a new version of the
package at once (the file names carry no content hash to make them immutable).
"""

from __future__ import annotations

import hashlib
import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Request, Response

from modeldepot.errors import NotFound

router = APIRouter(tags=["dashboard"], include_in_schema=False)

ASSET_PREFIX = "/dashboard"
_ROOT: Traversable = files("modeldepot").joinpath("dashboard", "static")
# Lower-case segments and one extension: no "..", no hidden file, nothing the table below
# would not type.
_ASSET_RE = re.compile(r"[a-z0-9_-]+(?:/[a-z0-9_-]+)*\.(?P<ext>html|js|css|svg|png)")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
}
CACHE_CONTROL = "no-cache"


@router.get("/")
async def index(request: Request) -> Response:
    """The dashboard page."""
    return await _serve(request, "index.html")


@router.get(ASSET_PREFIX + "/{asset:path}")
async def asset(
    request: Request, asset: Annotated[str, Path(description="A file of the dashboard")]
) -> Response:
    """A script, style sheet or image of the dashboard.

    Raises:
        NotFound: no such file in the package.
    """
    return await _serve(request, asset)


async def _serve(request: Request, name: str) -> Response:
    match = _ASSET_RE.fullmatch(name)
    body = await anyio.to_thread.run_sync(_read, name) if match else None
    if match is None or body is None:
        raise NotFound(f"The dashboard has no file {name!r}", details={"path": name})
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=CONTENT_TYPES[match["ext"]], headers=headers)


def _read(name: str) -> bytes | None:
    path = _ROOT.joinpath(*name.split("/"))
    return path.read_bytes() if path.is_file() else None


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}

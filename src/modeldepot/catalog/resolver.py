"""Resolving a catalogue source to a manifest: the hub through huggingface_hub, URLs by HEAD.

Hub metadata comes from ``HfApi.model_info(files_metadata=True)``: the commit the tracked
revision points at, and every file with its size and LFS sha256 (or git blob id). The call
is blocking (huggingface_hub's HTTP client), so it runs in a worker thread under a hard
deadline; nothing waits on the hub longer than ``hub_timeout_seconds`` (plus slack).
Foreign errors are translated here, once, into ``UpstreamError`` subclasses whose message
says what a user should do (gated model, bad token, missing repository, hub unreachable);
an HTTP status goes through the one table of modeldepot/upstream.py, as in transfers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from modeldepot.catalog.hubclient import MetadataTooLarge
from modeldepot.catalog.manifest import Manifest, ManifestFile
from modeldepot.catalog.schemas import CatalogEntry, HubSource, UrlSource
from modeldepot.errors import (
    DepotError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from modeldepot.ids import is_commit_hash, make_digest, url_commit, url_repo_id
from modeldepot.upstream import safe_url, status_error


class SourceResolver:
    """Turns catalogue entries into full (unfiltered) manifests."""

    def __init__(
        self,
        *,
        endpoint: str,
        token: str | None,
        timeout: float,
        http: httpx.AsyncClient,
        offline: bool = False,
    ) -> None:
        self._api = HfApi(endpoint=endpoint, token=token or False)
        self._endpoint = endpoint
        self._timeout = timeout
        self._http = http
        self._offline = offline

    async def resolve(self, entry: CatalogEntry) -> Manifest:
        """The manifest of ``entry``'s source at its tracked revision.

        Raises:
            UpstreamError: the source could not be resolved (subclass says why).
        """
        source = entry.parsed_source()
        if isinstance(source, HubSource):
            return await self._resolve_hub(entry.id, source)
        return await self._resolve_url(entry.id, source)

    async def _resolve_hub(self, model_id: str, source: HubSource) -> Manifest:
        if self._offline:
            raise UpstreamUnavailable("Offline mode (HF_HUB_OFFLINE): the hub is not contacted")
        # The worker thread cannot be cancelled; the deadline frees the caller regardless.
        with anyio.move_on_after(self._timeout + 1) as scope:
            info = await anyio.to_thread.run_sync(self._model_info, source, abandon_on_cancel=True)
        if scope.cancelled_caught:
            raise UpstreamTimeout(f"The hub at {self._endpoint} did not answer in time")
        return _manifest_from_info(model_id, source, info)

    def _model_info(self, source: HubSource) -> Any:
        try:
            return self._api.model_info(
                source.repo_id,
                revision=source.revision,
                files_metadata=True,
                timeout=self._timeout,
            )
        except (HfHubHTTPError, OfflineModeIsEnabled, httpx2.HTTPError, OSError) as exc:
            raise _translate_hub_error(exc, source, self._endpoint) from exc

    async def _resolve_url(self, model_id: str, source: UrlSource) -> Manifest:
        size = source.size
        if size is None:
            size = await self._remote_size(source.url)
        digest = make_digest("sha256", source.sha256) if source.sha256 else None
        return Manifest(
            model_id=model_id,
            source="url",
            repo_id=url_repo_id(model_id),
            revision="main",
            commit=url_commit(source.url, source.sha256),
            files=(ManifestFile(path=source.filename, size=size, digest=digest),),
            resolved_at=datetime.now(UTC),
        )

    async def _remote_size(self, url: str) -> int | None:
        try:
            response = await self._http.head(
                url,
                follow_redirects=True,
                timeout=self._timeout,
                headers={"Accept-Encoding": "identity"},
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{url} cannot be reached: {exc}") from exc
        if response.status_code >= 400:
            raise status_error(
                response.status_code,
                response.headers,
                what=safe_url(url),
                where=response.url.host or safe_url(url),
                details={"url": safe_url(url)},
            )
        length = response.headers.get("content-length", "")
        return int(length) if length.isdigit() else None


def _manifest_from_info(model_id: str, source: HubSource, info: Any) -> Manifest:
    commit = getattr(info, "sha", None)
    if not isinstance(commit, str) or not is_commit_hash(commit):
        raise UpstreamError(f"The hub gave no commit for {source.repo_id}@{source.revision}")
    files = []
    try:
        for sibling in info.siblings or []:
            files.append(_manifest_file(sibling))
    except DepotError as exc:
        # RELIABILITY.md item 2: a hostile file list fails before any directory exists.
        raise UpstreamError(
            f"The hub listed an unsafe or malformed file in {source.repo_id}: {exc.message}",
            details=exc.details,
        ) from exc
    return Manifest(
        model_id=model_id,
        source="hub",
        repo_id=source.repo_id,
        revision=source.revision,
        commit=commit,
        files=tuple(sorted(files, key=lambda f: f.path)),
        resolved_at=datetime.now(UTC),
    )


def _manifest_file(sibling: Any) -> ManifestFile:
    lfs = sibling.lfs
    if lfs is not None:
        return ManifestFile(
            path=sibling.rfilename, size=int(lfs.size), digest=make_digest("sha256", lfs.sha256)
        )
    if sibling.blob_id is None or sibling.size is None:
        raise UpstreamError(f"The hub gave no size or blob id for {sibling.rfilename}")
    return ManifestFile(
        path=sibling.rfilename,
        size=int(sibling.size),
        digest=make_digest("gitsha1", sibling.blob_id),
    )


def _translate_hub_error(exc: Exception, source: HubSource, endpoint: str) -> UpstreamError:
    repo = source.repo_id
    details = {"repo": repo, "revision": source.revision}
    if isinstance(exc, HfHubHTTPError):
        where = urlsplit(endpoint).hostname or endpoint
        return _hub_status_error(exc, what=repo, where=where, details=details)
    if isinstance(exc, MetadataTooLarge):
        return UpstreamProtocolError(
            f"The hub's answer for {repo} was refused: {exc}", details=details
        )
    if isinstance(exc, httpx2.TimeoutException):
        return UpstreamTimeout(f"The hub at {endpoint} did not answer in time", details=details)
    return UpstreamUnavailable(f"The hub at {endpoint} cannot be reached: {exc}", details=details)


def _hub_status_error(
    exc: HfHubHTTPError, *, what: str, where: str, details: dict[str, Any] | None = None
) -> UpstreamError:
    """The error for a hub answer huggingface_hub raised, from the table of
    modeldepot/upstream.py. Its typed errors (GatedRepoError, RepositoryNotFoundError, ...)
    are raised for the X-Error-Code on the answer, which the table reads itself; reading
    the answer rather than the type keeps them the same class as in transfers (the type
    would disagree where huggingface_hub guesses, e.g. a 401 without a code)."""
    response = exc.response
    return status_error(
        response.status_code, response.headers, what=what, where=where, details=details
    )

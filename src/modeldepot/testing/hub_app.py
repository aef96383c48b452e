"""The local hub's Hugging Face Hub API: model info, tree, paths-info, refs, resolve.

Endpoints (model repos; ids ``org/name`` or ``name``)::

    GET  /api/models/{repo}[/revision/{rev}]      model info (?blobs=true for file metadata)
    GET  /api/models/{repo}/tree/{rev}[/{path}]   ?recursive=&expand=&cursor=, Link pagination
    POST /api/models/{repo}/paths-info/{rev}      form or JSON body: paths=[...], expand
    GET  /api/models/{repo}/refs                  branches (tags, converts empty)
    GET  /api/models/{repo}/commits/{rev}         history, newest first
    HEAD|GET /{repo}/resolve/{rev}/{path}         file; LFS files 302 to the CDN (signed
                                                  URLs with a ``signed_url_ttl``)

It answers like huggingface.co so that huggingface_hub's own client works unchanged: the
headers it reads (X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size, Location), the
X-Error-Code values it maps to exceptions (RepoNotFound, RevisionNotFound, EntryNotFound,
GatedRepo), and no Xet headers (X-Xet-Hash, Link rel="xet-auth") so clients always take
the plain HTTP path.

Access follows the hub: an unknown token is 401 "Invalid credentials"; a private repo is
401 RepoNotFound without a token and 404 RepoNotFound with a token lacking access (its
existence is not revealed); a gated repo's metadata is public but its files are 401
GatedRepo without a token and 403 GatedRepo with a token lacking access.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from modeldepot.testing.dispatch import HubState, path_segments
from modeldepot.testing.repos import Commit, RepoFile, Repository
from modeldepot.testing.wire import (
    Exchange,
    FileSource,
    Headers,
    Scope,
    accepts_gzip,
    send_bytes,
    send_error,
    send_file,
    send_json,
    send_redirect,
)

_API_ACTIONS = frozenset({"revision", "tree", "paths-info", "refs", "commits"})
_TEXT_SUFFIXES = (".json", ".txt", ".md", ".py", ".yaml", ".yml", ".csv", ".model", ".vocab")
_MAX_REQUEST_BODY = 1024 * 1024
_MAX_GZIP_FILE = 8 * 1024 * 1024
_SECURITY_STATUS = {
    "status": "safe",
    "avScan": {"virusFound": False, "virusNames": None},
    "pickleImportScan": None,
}


@dataclass(frozen=True, slots=True)
class HubRoute:
    """A parsed hub request line."""

    kind: str
    """"info", "tree", "paths-info", "refs", "commits", "resolve" or "unknown"."""
    repo: str | None = None
    revision: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class Denied:
    status: int
    message: str
    error_code: str | None = None


class HubApp:
    """Routes and answers hub requests from the shared `HubState`."""

    def __init__(self, state: HubState) -> None:
        self.state = state

    # -- routing -----------------------------------------------------------------------

    def route(self, scope: Scope) -> HubRoute:
        segments = path_segments(scope)
        if segments[:2] == ["api", "models"]:
            return self._api_route(segments[2:])
        repo, rest = self._split_repo(segments, actions=frozenset({"resolve"}))
        if len(rest) >= 3 and rest[0] == "resolve":
            return HubRoute("resolve", repo, rest[1], "/".join(rest[2:]))
        return HubRoute("unknown")

    def _api_route(self, parts: list[str]) -> HubRoute:
        repo, rest = self._split_repo(parts, actions=_API_ACTIONS)
        if not repo:
            return HubRoute("unknown")
        if not rest or rest == [""]:
            return HubRoute("info", repo)
        action, args = rest[0], rest[1:]
        if action == "revision" and len(args) == 1:
            return HubRoute("info", repo, args[0])
        if action == "tree" and args:
            path = "/".join(args[1:]).strip("/")
            return HubRoute("tree", repo, args[0], path or None)
        if action in ("paths-info", "commits") and len(args) <= 1:
            return HubRoute(action, repo, args[0] if args else "main")
        if action == "refs" and not args:
            return HubRoute("refs", repo)
        return HubRoute("unknown", repo)

    def _split_repo(self, parts: list[str], *, actions: frozenset[str]) -> tuple[str, list[str]]:
        """Split ``org/name/...`` or ``name/...`` into the repo id and the rest."""
        if len(parts) >= 2 and f"{parts[0]}/{parts[1]}" in self.state.registry:
            return f"{parts[0]}/{parts[1]}", parts[2:]
        if parts and parts[0] in self.state.registry:
            return parts[0], parts[1:]
        if len(parts) >= 2 and parts[1] not in actions:
            return f"{parts[0]}/{parts[1]}", parts[2:]
        return (parts[0], parts[1:]) if parts else ("", [])

    # -- answering ---------------------------------------------------------------------

    async def handle(self, exchange: Exchange, route: HubRoute) -> None:
        allowed = {"paths-info": "POST"}.get(route.kind, "GET")
        method_ok = exchange.method == allowed or (allowed == "GET" and exchange.method == "HEAD")
        if route.kind == "unknown" or route.repo is None:
            await send_error(exchange, 404, "Not Found")
            return
        if not method_ok:
            await send_error(exchange, 405, "Method Not Allowed")
            return
        repo = self.state.registry.get(route.repo)
        denied = self._check_access(exchange, repo, route)
        if denied is not None:
            await send_error(exchange, denied.status, denied.message, error_code=denied.error_code)
            return
        assert repo is not None  # _check_access denies unknown repos
        if route.kind == "refs":
            await send_json(exchange, _refs(repo, exchange))
            return
        commit = repo.resolve(route.revision or "main")
        if commit is None:
            message = f"Invalid rev id: {route.revision}"
            await send_error(exchange, 404, message, error_code="RevisionNotFound")
            return
        handlers = {
            "info": self._info,
            "tree": self._tree,
            "paths-info": self._paths_info,
            "commits": self._commits,
            "resolve": self._resolve,
        }
        await handlers[route.kind](exchange, route, repo, commit)

    def _check_access(
        self, exchange: Exchange, repo: Repository | None, route: HubRoute
    ) -> Denied | None:
        token = _bearer_token(exchange.header("authorization"))
        if token is not None and token not in self.state.valid_tokens():
            return Denied(401, "Invalid credentials in Authorization header")
        if repo is None or (repo.private and token not in repo.tokens):
            status = 401 if token is None else 404
            return Denied(status, "Repository not found", "RepoNotFound")
        if repo.disabled:
            return Denied(403, "Access to this resource is disabled.")
        if route.kind == "resolve" and repo.gated and token not in repo.tokens:
            if token is None:
                message = (
                    f"Access to model {repo.repo_id} is restricted. You must have access to it"
                    " and be authenticated to access it. Please log in."
                )
                return Denied(401, message, "GatedRepo")
            message = (
                f"Access to model {repo.repo_id} is restricted and you are not in the"
                " authorized list."
            )
            return Denied(403, message, "GatedRepo")
        return None

    async def _info(
        self, exchange: Exchange, route: HubRoute, repo: Repository, commit: Commit
    ) -> None:
        blobs = _flag(exchange, "blobs")
        await send_json(exchange, model_info(repo, commit, blobs=blobs))

    async def _tree(
        self, exchange: Exchange, route: HubRoute, repo: Repository, commit: Commit
    ) -> None:
        folder = route.filename or ""
        if folder and folder not in commit.tree_ids:
            message = f"{folder} does not exist on {route.revision!r}"
            await send_error(exchange, 404, message, error_code="EntryNotFound")
            return
        recursive = _flag(exchange, "recursive")
        expand = _flag(exchange, "expand")
        paths = list(_walk(commit, folder, recursive=recursive))
        page_size = self.state.expand_page_size if expand else self.state.tree_page_size
        offset = _decode_cursor(_query(exchange).get("cursor"))
        page = paths[offset : offset + page_size]
        headers: Headers = []
        if offset + page_size < len(paths):
            params = {
                "recursive": str(recursive).lower(),
                "expand": str(expand).lower(),
                "cursor": _encode_cursor(offset + page_size),
            }
            next_url = f"{_base_url(exchange)}{exchange.record.path}?{urlencode(params)}"
            headers.append(("link", f'<{next_url}>; rel="next"'))
        entries = [_entry(repo, commit, path, expand=expand) for path in page]
        await send_json(exchange, entries, headers=headers)

    async def _paths_info(
        self, exchange: Exchange, route: HubRoute, repo: Repository, commit: Commit
    ) -> None:
        body = await _read_body(exchange)
        if body is None:
            await send_error(exchange, 413, "Request body too large")
            return
        try:
            paths, expand = _parse_paths_info(body, exchange.header("content-type") or "")
        except ValueError as exc:
            await send_error(exchange, 400, str(exc))
            return
        entries = [
            _entry(repo, commit, path.strip("/"), expand=expand)
            for path in paths
            if path.strip("/") in commit.files or path.strip("/") in commit.tree_ids
        ]
        await send_json(exchange, entries)

    async def _commits(
        self, exchange: Exchange, route: HubRoute, repo: Repository, commit: Commit
    ) -> None:
        history = [
            {
                "id": c.sha,
                "title": c.title,
                "message": "",
                "authors": [{"user": "localhub"}],
                "date": _iso(c.date),
            }
            for c in repo.history(commit.sha)
        ]
        await send_json(exchange, history)

    async def _resolve(
        self, exchange: Exchange, route: HubRoute, repo: Repository, commit: Commit
    ) -> None:
        commit_header = ("x-repo-commit", commit.sha)
        entry = commit.files.get(route.filename or "")
        if entry is None:
            message = f"Entry not found: {route.filename}"
            await send_error(
                exchange, 404, message, error_code="EntryNotFound", headers=[commit_header]
            )
            return
        if entry.lfs:
            await self._redirect_to_cdn(exchange, repo, entry, commit_header)
            return
        content_type = _content_type(entry.path)
        headers: Headers = [
            commit_header,
            ("content-disposition", _disposition("inline", entry.path)),
            ("vary", "Origin, Accept-Encoding"),
        ]
        if self._should_gzip(exchange, entry):
            data = gzip.compress(entry.disk_path.read_bytes(), compresslevel=6)
            headers += [("etag", f'"{entry.etag}"'), ("content-encoding", "gzip")]
            await send_bytes(exchange, 200, data, headers=headers, content_type=content_type)
            return
        source = FileSource(entry.disk_path)
        try:
            await send_file(
                exchange,
                source,
                etag=entry.etag,
                last_modified=commit.date.timestamp(),
                headers=[("content-type", content_type), *headers],
            )
        finally:
            source.close()

    async def _redirect_to_cdn(
        self,
        exchange: Exchange,
        repo: Repository,
        entry: RepoFile,
        commit_header: tuple[str, str],
    ) -> None:
        path = f"/blobs/{entry.sha256}"
        query = self.state.signer.sign(path, {"repo": repo.repo_id, "file": entry.path})
        location = f"{self.state.redirect_base}{path}?{query}"
        headers: Headers = [
            commit_header,
            ("etag", f'"{entry.sha256}"'),
            ("x-linked-etag", f'"{entry.sha256}"'),
            ("x-linked-size", str(entry.size)),
        ]
        await send_redirect(exchange, location, status=302, headers=headers)

    def _should_gzip(self, exchange: Exchange, entry: RepoFile) -> bool:
        # The hub compresses text files on the fly (huggingface_hub's http_get documents
        # it), so a body's Content-Length is then not the file size.
        return (
            self.state.gzip_text
            and exchange.method == "GET"
            and exchange.header("range") is None
            and 1024 < entry.size <= _MAX_GZIP_FILE
            and entry.path.endswith(_TEXT_SUFFIXES)
            and accepts_gzip(exchange)
        )


def model_info(repo: Repository, commit: Commit, *, blobs: bool) -> dict[str, Any]:
    """The JSON of ``GET /api/models/{repo}`` at `commit`."""
    siblings: list[dict[str, Any]] = []
    for path in sorted(commit.files):
        entry = commit.files[path]
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=entry.size, blobId=entry.blob_id)
            if entry.lfs:
                sibling["lfs"] = {
                    "sha256": entry.sha256,
                    "size": entry.size,
                    "pointerSize": len(entry.pointer),
                }
        siblings.append(sibling)
    info: dict[str, Any] = {
        "_id": hashlib.sha1(repo.repo_id.encode(), usedforsecurity=False).hexdigest()[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split("/")[0],
        "sha": commit.sha,
        "lastModified": _iso(commit.date),
        "createdAt": _iso(repo.created_at),
        "private": repo.private,
        "gated": repo.gated,
        "disabled": repo.disabled,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "spaces": [],
        "usedStorage": sum(f.size for f in commit.files.values()),
    }
    info.update(repo.extra_info)
    return info


def _walk(commit: Commit, folder: str, *, recursive: bool) -> Iterator[str]:
    """Paths under `folder`: sub-folders first (each followed by its contents), then files."""
    prefix = f"{folder}/" if folder else ""
    depth = prefix.count("/")
    subfolders = sorted(
        p for p in commit.tree_ids if p.startswith(prefix) and p and p.count("/") == depth
    )
    files = sorted(p for p in commit.files if p.startswith(prefix) and p.count("/") == depth)
    for sub in subfolders:
        yield sub
        if recursive:
            yield from _walk(commit, sub, recursive=True)
    yield from files


def _entry(repo: Repository, commit: Commit, path: str, *, expand: bool) -> dict[str, Any]:
    """A tree / paths-info entry for a file or folder at `commit`."""
    file = commit.files.get(path)
    entry: dict[str, Any]
    if file is None:
        entry = {"type": "directory", "oid": commit.tree_ids[path], "size": 0, "path": path}
    else:
        entry = {"type": "file", "oid": file.blob_id, "size": file.size, "path": path}
        if file.lfs:
            entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": len(file.pointer)}
    if expand:
        last = repo.last_commit_touching(commit, path)
        entry["lastCommit"] = {"id": last.sha, "title": last.title, "date": _iso(last.date)}
        if file is not None:
            entry["securityFileStatus"] = _SECURITY_STATUS
    return entry


def _refs(repo: Repository, exchange: Exchange) -> dict[str, Any]:
    refs: dict[str, Any] = {
        "branches": [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
            for name, sha in sorted(repo.branches.items())
        ],
        "converts": [],
        "tags": [],
    }
    if _flag(exchange, "include_prs"):
        refs["pullRequests"] = []
    return refs


def _parse_paths_info(body: bytes, content_type: str) -> tuple[list[str], bool]:
    """Paths and expand flag from a paths-info body (form-encoded, as huggingface_hub
    sends it, or JSON).

    Raises:
        ValueError: the body is not valid.
    """
    if content_type.startswith("application/json"):
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("paths"), list):
            raise ValueError("expected {'paths': [...]}")
        return [str(p) for p in data["paths"]], bool(data.get("expand", False))
    form = parse_qs(body.decode(), keep_blank_values=True)
    expand = form.get("expand", ["false"])[-1].lower() in ("true", "1")
    return form.get("paths", []), expand


async def _read_body(exchange: Exchange) -> bytes | None:
    body = bytearray()
    while True:
        message = await exchange.receive()
        if message["type"] != "http.request":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > _MAX_REQUEST_BODY:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _bearer_token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else header


def _query(exchange: Exchange) -> dict[str, str]:
    parsed = parse_qs(exchange.record.query, keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _flag(exchange: Exchange, name: str) -> bool:
    return _query(exchange).get(name, "false").lower() in ("true", "1")


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return max(0, int(data["offset"]))
    except (ValueError, KeyError, TypeError):
        return 0


def _base_url(exchange: Exchange) -> str:
    host = exchange.header("host") or "127.0.0.1"
    return f"{exchange.scope.get('scheme', 'http')}://{host}"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _content_type(path: str) -> str:
    if path.endswith(_TEXT_SUFFIXES):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def _disposition(kind: str, path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "")
    return f"{kind}; filename*=UTF-8''{quote(name)}; filename=\"{ascii_name}\";"

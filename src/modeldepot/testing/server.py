"""`LocalHub`: the hub and CDN servers running in a background thread.

One `LocalHub` runs three uvicorn servers on 127.0.0.1, each on its own free port, in one
thread with its own event loop (so it keeps answering while a test's loop is blocked in a
synchronous huggingface_hub call):

- the hub (`endpoint`, usable as ``HF_ENDPOINT``), see `modeldepot.testing.hub_app`;
- the CDN (`cdn_url`) that LFS downloads are redirected to, see `modeldepot.testing.cdn_app`;
- a mirror CDN (`mirror_url`): the same blobs on another port, for cross-host redirects.

Content lives on disk under `root` (see `modeldepot.testing.blobs` for the layout); repos,
faults and the request log live in memory. Usage::

    with LocalHub() as hub:
        sha = hub.create_repo("acme/tiny", {"config.json": b"{}"})
        snapshot_download("acme/tiny", endpoint=hub.endpoint, cache_dir=tmp)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
import threading
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modeldepot.testing.blobs import BlobStore
from modeldepot.testing.cdn_app import CdnApp
from modeldepot.testing.dispatch import DispatchingApp, HubState
from modeldepot.testing.faults import FaultSet, OnRequest, RequestLog, ServerName
from modeldepot.testing.hub_app import HubApp
from modeldepot.testing.repos import (
    FileSource,
    GatedMode,
    LfsRule,
    RepoRegistry,
    Repository,
    default_lfs_rule,
)
from modeldepot.testing.signing import UrlSigner
from modeldepot.testing.wire import TRANSPORT_EXTENSION

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
_GRACE_S = 1.0
_SERVERS: tuple[ServerName, ...] = ("hub", "cdn", "mirror")


class _TransportExposingProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, plus the connection's transport in the ASGI scope.

    Wire-level faults (closing mid-body, writing past Content-Length) need the socket.
    The hub never writes an access log: uvicorn decides per connection from the shared
    ``uvicorn.access`` logger, which in ``serve --demo`` is the service's own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {TRANSPORT_EXTENSION: {"transport": self.transport}}


class _QuietHubThreads(logging.Filter):
    """Drops uvicorn's routine lines (started, shutting down) logged by LocalHub threads.

    uvicorn logs through the fixed ``uvicorn.error`` logger, shared with the service in
    ``serve --demo``; the hub's own servers run on threads named ``localhub...``, so their
    INFO chatter is told apart by thread. Warnings and errors still show.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not (record.threadName or "").startswith("localhub")


_QUIET = _QuietHubThreads()


class _Server(uvicorn.Server):
    """uvicorn server that stops as soon as it is told to (no 0.1 s polling), so a test's
    hub starts and stops in milliseconds."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake = asyncio.Event()

    def request_exit(self) -> None:
        self.should_exit = True
        self._wake.set()

    async def main_loop(self) -> None:
        # on_tick(0) refreshes the Date header and reports should_exit.
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        if self.server_state.tasks:
            await asyncio.wait(list(self.server_state.tasks), timeout=_GRACE_S)
        pending = list(self.server_state.tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for connection in list(self.server_state.connections):
            connection.transport.close()
        # Let the transports run their close callbacks before the loop goes away.
        for _ in range(200):
            if not self.server_state.connections:
                break
            await asyncio.sleep(0.005)
        for server in self.servers:
            await server.wait_closed()


class LocalHub:
    """A real HTTP Hugging Face Hub (plus CDN) on localhost, with fault switches.

    Args:
        root: where content is stored; a temporary directory (removed on `stop`) if None.
        lfs_rule: which files are LFS (redirected to the CDN); see `make_lfs_rule`.
        redirect_base_url: where LFS redirects point (e.g. nginx with ``root <root>``);
            the local CDN if None. Also settable later.
        tree_page_size / expand_page_size: tree pagination, as the hub (1000 / 50).
        gzip_text: gzip text files on /resolve when the client accepts gzip, as the hub.
        signed_url_ttl: seconds LFS redirect URLs stay valid (``Expires``, ``Signature``,
            ``Key-Pair-Id``, checked by the CDN and the mirror); None (the default) signs
            nothing. Also settable later; see `expire_signed_urls`.

    Raises:
        ValueError: ``signed_url_ttl`` is not in (0, 7 days].
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        lfs_rule: LfsRule = default_lfs_rule,
        redirect_base_url: str | None = None,
        tree_page_size: int = 1000,
        expand_page_size: int = 50,
        gzip_text: bool = True,
        signed_url_ttl: float | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="localhub-")) if root is None else Path(root)
        store = BlobStore(self.root)
        self.state = HubState(
            store=store,
            registry=RepoRegistry(store, lfs_rule=lfs_rule),
            redirect_base_url=redirect_base_url,
            tree_page_size=tree_page_size,
            expand_page_size=expand_page_size,
            gzip_text=gzip_text,
            signer=UrlSigner(signed_url_ttl),
        )
        self.host = host
        self._urls: dict[ServerName, str] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- addresses ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """Base URL of the hub, e.g. ``http://127.0.0.1:40123`` (use as HF_ENDPOINT)."""
        return self._url("hub")

    @property
    def cdn_url(self) -> str:
        """Base URL of the local CDN serving ``/blobs/<sha256>``."""
        return self._url("cdn")

    @property
    def mirror_url(self) -> str:
        """Base URL of a second CDN host serving the same blobs."""
        return self._url("mirror")

    def _url(self, name: ServerName) -> str:
        if name not in self._urls:
            raise RuntimeError("LocalHub is not started")
        return self._urls[name]

    # -- repos -------------------------------------------------------------------------

    @property
    def repos(self) -> RepoRegistry:
        return self.state.registry

    def repo(self, repo_id: str) -> Repository:
        """The repository object (its access fields may be changed at any time).

        Raises:
            RepoNotFoundError: unknown repo.
        """
        return self.state.registry[repo_id]

    def create_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileSource],
        *,
        private: bool = False,
        gated: bool | GatedMode = False,
        tokens: Collection[str] | None = None,
        message: str = "Initial commit",
        extra_info: Mapping[str, Any] | None = None,
        unsafe_paths: bool = False,
    ) -> str:
        """Create a repo with one commit on main; return its 40-hex commit sha.

        `tokens` may read it when private or gated (default: `DEFAULT_TOKEN`).

        Raises:
            ValueError: the repo exists, or the id or a path is invalid.
        """
        return self.state.registry.create(
            repo_id,
            files,
            private=private,
            gated=gated,
            tokens=tokens,
            message=message,
            extra_info=extra_info,
            unsafe_paths=unsafe_paths,
        )

    def commit(
        self,
        repo_id: str,
        *,
        add: Mapping[str, FileSource] | None = None,
        delete: Iterable[str] = (),
        branch: str = "main",
        message: str = "Update files",
        parent: str | None = None,
        unsafe_paths: bool = False,
    ) -> str:
        """Commit changes on `branch`; return the new sha (older shas stay resolvable).

        Raises:
            RepoNotFoundError: unknown repo.
            ValueError: a deleted path does not exist, or `parent` is unknown.
        """
        return self.state.registry.commit(
            repo_id,
            add=add,
            delete=delete,
            branch=branch,
            message=message,
            parent=parent,
            unsafe_paths=unsafe_paths,
        )

    def set_branch(self, repo_id: str, branch: str, sha: str) -> None:
        """Point `branch` at an existing commit (e.g. roll main back)."""
        self.state.registry.set_branch(repo_id, branch, sha)

    def add_token(self, token: str) -> None:
        """Make `token` a valid token (for no repo in particular): unknown tokens get 401."""
        self.state.extra_tokens.add(token)

    def blob_path(self, sha256: str) -> Path:
        """Where the CDN's blob for `sha256` lives: ``<root>/blobs/<sha256>``."""
        return self.state.store.lfs_path(sha256)

    # -- faults and the request log ---------------------------------------------------

    @property
    def faults(self) -> FaultSet:
        return self.state.faults

    @property
    def requests(self) -> RequestLog:
        return self.state.requests

    @property
    def on_request(self) -> OnRequest | None:
        return self.state.on_request

    @on_request.setter
    def on_request(self, hook: OnRequest | None) -> None:
        self.state.on_request = hook

    @property
    def redirect_base_url(self) -> str:
        return self.state.redirect_base

    @redirect_base_url.setter
    def redirect_base_url(self, url: str | None) -> None:
        self.state.redirect_base_url = url

    @property
    def signed_url_ttl(self) -> float | None:
        """Seconds a signed LFS redirect stays valid; None: URLs are not signed."""
        return self.state.signer.ttl

    @signed_url_ttl.setter
    def signed_url_ttl(self, seconds: float | None) -> None:
        self.state.signer.ttl = seconds

    def expire_signed_urls(self) -> None:
        """Make every signed URL issued so far expired (the CDNs answer 403 "Request has
        expired" to new requests with it; responses already streaming continue).

        Safe from any thread, e.g. from an `on_request` hook after every k-th request.
        """
        self.state.signer.expire_all()

    def reset(self) -> None:
        """Disarm every fault, drop the hook and clear the request log (repos stay)."""
        self.state.faults.clear()
        self.state.on_request = None
        self.state.requests.clear()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start the servers and wait until they accept connections.

        Raises:
            RuntimeError: already started, or the servers failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("LocalHub already started")
        sockets = {name: _listening_socket(self.host) for name in _SERVERS}
        for name, sock in sockets.items():
            self._urls[name] = f"http://{self.host}:{sock.getsockname()[1]}"
        self.state.cdn_url = self._urls["cdn"]
        ready = threading.Event()
        uvicorn_log = logging.getLogger("uvicorn.error")
        if _QUIET not in uvicorn_log.filters:
            uvicorn_log.addFilter(_QUIET)
        self._thread = threading.Thread(
            target=self._run, args=(sockets, ready), name=f"localhub{self.endpoint}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or self._error is not None:
            self.stop()
            raise RuntimeError("LocalHub failed to start") from self._error
        return self

    def stop(self) -> None:
        """Stop the servers (ending stalled responses) and remove a temporary root."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is not None:
            if loop is not None and stop_event is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                    loop.call_soon_threadsafe(stop_event.set)
            thread.join(_STOP_TIMEOUT_S)
            if thread.is_alive():
                raise RuntimeError("LocalHub did not stop in time")
        self._thread = self._loop = self._stop_event = None
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, sockets: dict[ServerName, socket.socket], ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(sockets, ready))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            ready.set()
        finally:
            for sock in sockets.values():
                sock.close()

    async def _serve(
        self, sockets: dict[ServerName, socket.socket], ready: threading.Event
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self.state.closing = asyncio.Event()
        servers = {name: self._server(name) for name in sockets}
        tasks = [
            asyncio.create_task(servers[name].serve(sockets=[sock]))
            for name, sock in sockets.items()
        ]
        while not all(s.started for s in servers.values()):
            if any(t.done() for t in tasks):
                await asyncio.gather(*tasks)  # re-raises the startup failure
                raise RuntimeError("a LocalHub server exited during startup")
            await asyncio.sleep(0.002)
        ready.set()
        await self._stop_event.wait()
        self.state.closing.set()
        for server in servers.values():
            server.request_exit()
        await asyncio.gather(*tasks)

    def _server(self, name: ServerName) -> _Server:
        app: DispatchingApp[Any]
        if name == "hub":
            app = DispatchingApp(server=name, state=self.state, app=HubApp(self.state))
        else:
            app = DispatchingApp(server=name, state=self.state, app=CdnApp(self.state))
        config = uvicorn.Config(
            app,
            http=_TransportExposingProtocol,
            lifespan="off",
            ws="none",
            access_log=False,
            log_config=None,
            log_level=None,
            server_header=False,
        )
        return _Server(config)


def _listening_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock

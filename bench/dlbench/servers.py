"""The servers the benchmark downloads from: the local hub and nginx standing in for a CDN.

Layout under the cache directory (``bench/out`` by default)::

    hub/blobs/<sha256>     LFS content, kept between runs (the local hub's root)
    payloads.json          which payload is which blob (size, seed, sha256)
    nginx/                 nginx prefix: generated nginx.conf, error.log, pid, temp dirs

The hub answers LFS downloads with a 302 to ``redirect_base_url + /blobs/<sha256>``; that
base points at nginx (``root <hub root>;``), which serves the bytes with sendfile exactly
as a static CDN would. One nginx serves two ports: one with ``limit_rate`` per connection
(a CDN's per-connection cap) and one without.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from modeldepot.testing import LocalHub, write_random_file

MIB = 1024 * 1024
GIB = 1024 * MIB
FILENAME = "model.safetensors"
_NGINX_START_TIMEOUT_S = 15.0
_NGINX_STOP_TIMEOUT_S = 10.0
_HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Payload:
    """One benchmark model: a repo with a single large random LFS file."""

    key: str
    repo_id: str
    model_id: str
    size: int
    seed: int

    @property
    def cache_folder(self) -> str:
        """The repo's folder in the HF hub cache layout (``models--org--name``)."""
        return "models--" + self.repo_id.replace("/", "--")


PAYLOADS: dict[str, Payload] = {
    "512m": Payload("512m", "bench/big-512m", "bench-512m", 512 * MIB, seed=512),
    "2g": Payload("2g", "bench/big-2g", "bench-2g", 2 * GIB, seed=2048),
}


@dataclass(frozen=True, slots=True)
class Published:
    """A payload as served: its sha256 and the blob file nginx serves."""

    payload: Payload
    sha256: str
    blob: Path


def start_hub(out_dir: Path) -> LocalHub:
    """Start a local hub rooted at ``out_dir/hub`` (blobs persist between runs)."""
    root = out_dir / "hub"
    shutil.rmtree(root / "tmp", ignore_errors=True)  # partial imports of an interrupted run
    return LocalHub(root).start()


def publish(hub: LocalHub, payload: Payload, out_dir: Path) -> Published:
    """Create the payload's repo on `hub`, generating its random file the first time only.

    The file is generated once, imported into the hub's blob store, and then deleted; later
    runs re-import the stored blob itself (it is its own source), so one copy is kept.
    """
    manifest_path = out_dir / "payloads.json"
    manifest = _read_manifest(manifest_path)
    known = manifest.get(payload.repo_id, {})
    blob = hub.blob_path(str(known.get("sha256", "0" * 64)))
    reusable = (
        known.get("size") == payload.size
        and known.get("seed") == payload.seed
        and blob.is_file()
        and blob.stat().st_size == payload.size
    )
    if reusable:
        source = blob
    else:
        print(f"generating {payload.repo_id} ({payload.size / MIB:.0f} MiB) ...", flush=True)
        source = write_random_file(out_dir / "gen" / payload.key, payload.size, seed=payload.seed)
    hub.create_repo(payload.repo_id, {FILENAME: source})
    sha256 = hub.repo(payload.repo_id).head.files[FILENAME].sha256
    if not reusable:
        source.unlink()
        manifest[payload.repo_id] = {"size": payload.size, "seed": payload.seed, "sha256": sha256}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return Published(payload=payload, sha256=sha256, blob=hub.blob_path(sha256))


def _read_manifest(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def warm_page_cache(path: Path) -> None:
    """Read `path` once so every tool is served from the page cache alike."""
    with path.open("rb") as reader:
        while reader.read(8 * MIB):
            pass


def check_redirect(hub: LocalHub, published: Published, expected_base: str) -> None:
    """Fail early unless the hub redirects the payload to nginx and nginx serves it whole.

    Raises:
        RuntimeError: wrong redirect target or size.
    """
    url = f"{hub.endpoint}/{published.payload.repo_id}/resolve/main/{FILENAME}"
    with httpx.Client(timeout=_HTTP_TIMEOUT_S, trust_env=False) as client:
        answer = client.head(url)
        location = answer.headers.get("location", "")
        if answer.status_code != 302 or not location.startswith(expected_base):
            raise RuntimeError(f"hub answered {answer.status_code} to {location!r} for {url}")
        served = client.head(location)
    length = int(served.headers.get("content-length", "-1"))
    if served.status_code != 200 or length != published.payload.size:
        raise RuntimeError(f"nginx answered {served.status_code}, {length} bytes for {location}")


class Nginx:
    """nginx in the foreground, with its own prefix and config, on two loopback ports.

    `throttled_url` applies ``limit_rate`` to every connection; `open_url` has no limit.
    """

    def __init__(self, binary: str, prefix: Path, root: Path, limit_rate: str) -> None:
        self.binary = binary
        self.prefix = prefix
        self.root = root
        self.limit_rate = limit_rate
        self._ports = (0, 0)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def throttled_url(self) -> str:
        return f"http://127.0.0.1:{self._ports[0]}"

    @property
    def open_url(self) -> str:
        return f"http://127.0.0.1:{self._ports[1]}"

    def start(self, attempts: int = 3) -> None:
        """Start nginx and wait until both ports accept connections.

        Raises:
            RuntimeError: nginx exits or does not listen in time (error.log is quoted).
        """
        for attempt in range(attempts):
            self._ports = (free_port(), free_port())
            self._write_config()
            try:
                self._launch()
            except RuntimeError:
                if attempt == attempts - 1:  # a port may have been taken meanwhile: retry
                    raise
            else:
                return

    def stop(self) -> None:
        """Stop nginx (fast shutdown, then SIGKILL of its process group)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_NGINX_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(_NGINX_STOP_TIMEOUT_S)

    @property
    def config_path(self) -> Path:
        return self.prefix / "nginx.conf"

    def _launch(self) -> None:
        log = (self.prefix / "nginx.stderr").open("wb")
        with log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    "-p",
                    f"{self.prefix}/",
                    "-c",
                    str(self.config_path),
                    "-e",
                    str(self.prefix / "error.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + _NGINX_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if all(_accepts(port) for port in self._ports):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start; {self._error_tail()}")

    def _error_tail(self) -> str:
        texts = []
        for name in ("nginx.stderr", "error.log"):
            with contextlib.suppress(OSError):
                texts.append((self.prefix / name).read_text()[-1500:])
        return " | ".join(t.strip() for t in texts if t.strip()) or "no log output"

    def _write_config(self) -> None:
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        (self.prefix / "error.log").unlink(missing_ok=True)
        self.config_path.write_text(
            render_config(self.prefix, self.root, self._ports, self.limit_rate)
        )


def render_config(prefix: Path, root: Path, ports: tuple[int, int], limit_rate: str) -> str:
    """nginx.conf: a static file server like a CDN edge (sendfile, keepalive, no logs)."""
    user = ""
    if os.geteuid() == 0:  # workers must read the blobs wherever the checkout lives
        user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};"
    throttled, unthrottled = ports
    return f"""# Generated by bench/downloads.py; rewritten on every run.
{user}
worker_processes auto;
daemon off;
master_process on;
pid "{prefix}/nginx.pid";
error_log "{prefix}/error.log" warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 10000;
    types {{ }}
    default_type application/octet-stream;
    client_body_temp_path "{prefix}/tmp/body";
    proxy_temp_path "{prefix}/tmp/proxy";
    fastcgi_temp_path "{prefix}/tmp/fastcgi";
    uwsgi_temp_path "{prefix}/tmp/uwsgi";
    scgi_temp_path "{prefix}/tmp/scgi";

    # Scenario A: a CDN edge capping every connection (limit_rate is per connection).
    server {{
        listen 127.0.0.1:{throttled};
        root "{root}";
        limit_rate {limit_rate};
        location /blobs/ {{ }}
        location / {{ return 404; }}
    }}

    # Scenario B: the same files, no cap.
    server {{
        listen 127.0.0.1:{unthrottled};
        root "{root}";
        location /blobs/ {{ }}
        location / {{ return 404; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0

"""Helpers for crash and disk tests: the real service as a process, tmpfs mounts, and what a
crash left on disk.

`ServiceProcess` runs ``python -m modeldepot serve`` exactly as a user would (catalogue
file, models and data directories, ``HF_ENDPOINT``) and can be SIGKILLed at any moment and
started again on the same directories. `tmpfs` mounts a small RAM file system (we run as
root) so "disk full" and "read-only" are real kernel answers, not mocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldepot.testing import LocalHub, RecordedRequest
from tests.cli.test_cli import free_port

PARTIAL = ".modeldepot-partial"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


# --- the hub repository -------------------------------------------------------------------


@dataclass
class HubModel:
    """A repository published on the local hub, and the catalogue entry that names it."""

    model_id: str
    repo_id: str
    commit: str
    files: dict[str, bytes]

    @property
    def folder(self) -> str:
        return "models--" + self.repo_id.replace("/", "--")

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    @property
    def lfs_files(self) -> dict[str, bytes]:
        """Files the hub stores in LFS (served by the CDN with Range support)."""
        return {p: b for p, b in self.files.items() if p.endswith(".safetensors")}

    @property
    def total_bytes(self) -> int:
        return sum(len(b) for b in self.files.values())


def random_bytes(size: int, *, seed: int) -> bytes:
    """Deterministic incompressible bytes (sha256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def publish(
    hub: LocalHub, *, model_id: str, repo_id: str, sizes: Mapping[str, int], seed: int
) -> HubModel:
    """A repo with a small config and one random LFS file per ``{path: size}``."""
    files = {"config.json": b'{"model_type": "crash-test"}\n'}
    for index, (path, size) in enumerate(sorted(sizes.items())):
        files[path] = random_bytes(size, seed=seed * 100 + index)
    commit = hub.create_repo(repo_id, files)
    return HubModel(model_id=model_id, repo_id=repo_id, commit=commit, files=files)


def write_catalog(path: Path, models: list[HubModel]) -> Path:
    tables = [
        f'[[models]]\nid = "{m.model_id}"\nsource = "hf://{m.repo_id}"\n'
        'model_type = "text-to-video"\n'
        for m in models
    ]
    path.write_text("\n".join(tables))
    return path


# --- the service as a process ---------------------------------------------------------------


@dataclass
class ServiceProcess:
    """``python -m modeldepot serve`` on a free port; SIGKILL or stop it, start it again."""

    root: Path
    hub: LocalHub
    models: list[HubModel]
    extra_env: dict[str, str] = field(default_factory=dict)
    models_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    runs: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def models_root(self) -> Path:
        return self.models_dir or self.root / "models"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDEPOT_", "HF_"))}
        env.update(
            MODELDEPOT_MODELS_DIR=str(self.models_root),
            MODELDEPOT_DATA_DIR=str(self.data_dir),
            MODELDEPOT_CATALOG=str(write_catalog(self.root / "catalog.toml", self.models)),
            HF_ENDPOINT=self.hub.endpoint,
            HF_HOME=str(self.root / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            # Small segments and frequent checkpoints: a crash lands between many of them.
            MODELDEPOT_MIN_SEGMENT_MB="0.25",
            MODELDEPOT_CHECKPOINT_INTERVAL_SECONDS="0.05",
            MODELDEPOT_RETRY_BASE_DELAY_SECONDS="0.01",
            MODELDEPOT_RETRY_MAX_DELAY_SECONDS="0.05",
            MODELDEPOT_STALL_TIMEOUT_SECONDS="2",
            MODELDEPOT_STORAGE__MIN_FREE_SPACE_GB="0",
            MODELDEPOT_STATUS_CACHE_TTL_SECONDS="0",
        )
        env.update(self.extra_env)
        return env

    def start(self, command_prefix: tuple[str, ...] = ()) -> None:
        """Start the service and wait until ``/healthz`` answers.

        Raises:
            AssertionError: it exited or did not answer within START_TIMEOUT_S.
        """
        assert self.process is None, "already running"
        self.runs += 1
        self.port = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"service-{self.runs}.log").open("wb")
        command = [
            *command_prefix,
            sys.executable,
            "-m",
            "modeldepot",
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        with log:
            self.process = subprocess.Popen(
                command, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"the service exited at start-up:\n{self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return
                time.sleep(0.02)
        raise AssertionError(f"the service never answered /healthz:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a power cut of the process."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)
        self.process = None

    def stop(self) -> None:
        """A clean stop (SIGTERM), SIGKILL if it does not stop in time."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)
        self.process = None

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-4000:]
            for path in sorted(self.root.glob("service-*.log"))
        )

    # --- the HTTP API ---

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=5)

    def manage(self, action: str, model_id: str, **fields: Any) -> httpx.Response:
        with self.client() as client:
            return client.post(
                "/api/v1/models/download/manage",
                json={"model_id": model_id, "action": action, **fields},
            )

    def get(self, path: str) -> httpx.Response:
        with self.client() as client:
            return client.get(path)

    def progress(self, model_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/models/download/progress/{model_id}").json())

    def wait_for_status(
        self, model_id: str, statuses: tuple[str, ...], *, within: float = 20
    ) -> dict[str, Any]:
        """Poll progress (read-only) until the status is one of ``statuses``."""
        deadline = time.monotonic() + within
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.progress(model_id)
            if body.get("status") in statuses:
                return body
            time.sleep(0.05)
        raise AssertionError(f"{model_id} never reached {statuses}; last: {body}\n{self.log()}")


@contextlib.contextmanager
def running_service(service: ServiceProcess) -> Iterator[ServiceProcess]:
    """Whatever happens in the block, no service process outlives it."""
    try:
        yield service
    finally:
        service.kill()


# --- what is on disk ----------------------------------------------------------------------


Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Checkpointed:
    """What a file's checkpoint says is durably on disk, and which bytes of the partial
    really hold the right content (both read right after a kill, before the restart)."""

    size: int
    done_ranges: Ranges
    correct_on_disk: Ranges

    @property
    def done(self) -> int:
        return sum(b - a for a, b in self.done_ranges)

    @property
    def remaining(self) -> int:
        return self.size - self.done


def read_checkpoints(models_dir: Path, model: HubModel) -> dict[str, Checkpointed]:
    """Per LFS file: nothing done (no checkpoint), what the checkpoint says, or all done
    (the blob was already promoted)."""
    blobs = models_dir / model.folder / "blobs"
    state: dict[str, Checkpointed] = {}
    for path, data in model.lfs_files.items():
        sha = model.sha256(path)
        if (blobs / sha).is_file():
            everything = ((0, len(data)),)
            state[path] = Checkpointed(len(data), everything, everything)
            continue
        correct = matching_blocks(blobs / f"{sha}{PARTIAL}", data)
        try:
            checkpoint = json.loads((blobs / f"{sha}{PARTIAL}.json").read_text())
        except (OSError, ValueError):
            state[path] = Checkpointed(len(data), (), correct)
            continue
        done = tuple((a, a + d) for a, _b, d in checkpoint["plan"]["segments"] if d)
        state[path] = Checkpointed(len(data), done, correct)
    return state


def matching_blocks(partial: Path, data: bytes, *, block: int = 4096) -> Ranges:
    """The 4 KiB blocks of ``partial`` that already hold the file's bytes (random data: a
    hole or a torn write never matches)."""
    try:
        written = partial.read_bytes()
    except OSError:
        return ()
    blocks = [
        (start, min(start + block, len(data)))
        for start in range(0, min(len(written), len(data)), block)
        if written[start : start + block] == data[start : start + block]
    ]
    return merge(blocks)


def merge(ranges: list[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for first, end in sorted(ranges):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > first:
            merged.append((first, end))
    return tuple(merged)


def overlap(left: Ranges, right: Ranges) -> int:
    return sum(max(0, min(b, d) - max(a, c)) for a, b in left for c, d in right)


def snapshot_problems(models_dir: Path, model: HubModel) -> list[str]:
    """Files in any snapshot of the model whose bytes are not the manifest's, and entries
    that are not manifest files at all (the invariant: visible => verified)."""
    problems = []
    snapshots = models_dir / model.folder / "snapshots"
    for entry in sorted(snapshots.rglob("*")) if snapshots.exists() else []:
        if entry.is_dir() and not entry.is_symlink():
            continue
        relpath = entry.relative_to(snapshots / model.commit).as_posix()
        if relpath not in model.files:
            problems.append(f"unexpected snapshot entry {relpath}")
        elif not entry.exists():
            problems.append(f"{relpath} is a broken link")
        elif entry.read_bytes() != model.files[relpath]:
            problems.append(f"{relpath} is visible with wrong bytes")
    return problems


def leftovers(models_dir: Path) -> list[str]:
    """Partial files, checkpoints and their temp files anywhere in the models directory."""
    return sorted(
        p.relative_to(models_dir).as_posix()
        for p in models_dir.rglob("*")
        if PARTIAL in p.name or p.name.endswith((".tmp", ".tmp-link"))
    )


def cdn_gets(hub: LocalHub, sha: str, *, since: int = 0) -> list[RecordedRequest]:
    """The CDN GETs of blob ``sha`` from the ``since``-th request the hub logged on (take
    ``len(hub.requests)`` at the moment that matters: the log is in arrival order)."""
    path = f"/blobs/{sha}"
    return [
        r
        for r in hub.requests[since:]
        if r.server == "cdn" and r.method == "GET" and r.path == path
    ]


def requested_range(request: RecordedRequest, size: int) -> tuple[int, int]:
    """The byte range ``[first, end)`` a GET asked for (the whole file without Range)."""
    if not request.range:
        return 0, size
    first, _, last = request.range.removeprefix("bytes=").partition("-")
    return int(first), (int(last) + 1 if last else size)


# --- tmpfs ----------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "8M") mounted at ``path``, unmounted afterwards.

    Skips the test when the kernel refuses the mount (not root, or no mount namespace).
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)


def remount_read_only(path: Path) -> None:
    subprocess.run(
        ["mount", "-o", "remount,ro", str(path)], capture_output=True, timeout=10, check=True
    )


def fill_disk(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; return the bytes written."""
    written = 0
    chunk = b"\0" * (64 * 1024)
    with path.open("wb", buffering=0) as handle:
        try:
            while True:
                written += handle.write(chunk) or 0
        except OSError as exc:
            if exc.errno != 28:  # ENOSPC
                raise
    return written


def file_states(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every regular file (links followed) under ``root``: its bytes and mtime in ns."""
    states = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            states[path.relative_to(root).as_posix()] = (path.read_bytes(), path.stat().st_mtime_ns)
    return states

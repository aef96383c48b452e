"""How each benchmarked tool is invoked, and one measured run of a tool.

Every tool runs as its own subprocess (so its time and memory are its own) into a fresh,
empty destination directory, and the file it produced is then checked against the
payload's sha256 (untimed). Tools:

- ``curl``: one stream straight from nginx;
- ``aria2c-x8`` / ``aria2c-x16``: ``aria2c -xN -sN -k1M`` straight from nginx;
- ``curl+fsync`` / ``aria2c-x16+fsync``: the same, then ``sync FILE`` (see `with_fsync`);
- ``hf_hub``: huggingface_hub ``snapshot_download`` through the hub (Xet and hf_transfer off);
- ``hashlib``: ``hashlib.file_digest`` of the blob, the hashing anchor (its own timing);
- ``modeldepot``: ``python -m modeldepot pull <model> [--json]``; see `modeldepot_invocation`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dlbench.procmon import ProcessRun, run_measured
from dlbench.servers import FILENAME, Published
from dlbench.system import child_env

_HASH_CHUNK = 8 * 1024 * 1024
_PROBE_TIMEOUT_S = 60.0
_BOX = re.compile("[\u2500-\u257f]+")

_HF_SCRIPT = """\
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], cache_dir=sys.argv[2], endpoint=sys.argv[3])
"""

# The service as people run it: `modeldepot serve` is up (started and given the catalogue
# before the clock starts, untimed), and the timed part is what an app waits for: from
# `POST .../download/manage {"action": "start"}` to the progress saying COMPLETED, polled
# every 50 ms (more often costs the service CPU it needs for the transfer). The driver's
# own memory is tiny; the sampled RSS is the service's.
SERVICE_SCRIPT = """\
import json, os, signal, subprocess, sys, time, urllib.error, urllib.request
model, port = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
service = subprocess.Popen(
    [sys.executable, "-m", "modeldepot", "serve", "--port", port, "--log-level", "warning"],
    env=os.environ,
)
try:
    deadline = time.monotonic() + 60
    while True:
        try:
            call("/healthz")
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise SystemExit("service did not start")
            time.sleep(0.05)
    call(f"/api/v1/models/status/detailed/{model}?refresh=true")
    started = time.perf_counter()
    call("/api/v1/models/download/manage", {"model_id": model, "action": "start"})
    while True:
        progress = call(f"/api/v1/models/download/progress/{model}")
        if progress["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if progress["status"] != "COMPLETED":
        raise SystemExit(f"download {progress['status']}: {progress['error_message']}")
    print(json.dumps({
        "event": "completed", "timed_seconds": seconds,
        "last_byte_at": progress["last_byte_at"], "available_at": progress["available_at"],
    }))
finally:
    service.send_signal(signal.SIGINT)
    try:
        service.wait(timeout=30)
    except subprocess.TimeoutExpired:
        service.kill()
"""

_HASHLIB_SCRIPT = """\
import hashlib, json, sys, time
started = time.perf_counter()
with open(sys.argv[1], "rb") as reader:
    digest = hashlib.file_digest(reader, "sha256").hexdigest()
print(json.dumps({"seconds": time.perf_counter() - started, "sha256": digest}))
"""


@dataclass(frozen=True, slots=True)
class Target:
    """What a scenario offers a tool: the payload, where nginx serves it, the hub, etc."""

    published: Published
    blob_url: str
    hub_endpoint: str
    catalog: Path
    binaries: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Facts:
    """What a tool reported on stdout, when it reports anything."""

    seconds: float | None = None
    """The tool's own timing, used instead of wall time (hashlib: no interpreter start)."""
    sha256: str | None = None
    """A digest the tool computed itself (hashlib); else the produced file is hashed."""
    last_byte_to_available_s: float | None = None


def _no_facts(_stdout: str) -> Facts:
    return Facts()


@dataclass(frozen=True, slots=True)
class Invocation:
    """A command line, its environment, and where its result file will be."""

    argv: Sequence[str]
    env: Mapping[str, str]
    locate: Callable[[], Path | None]
    parse: Callable[[str], Facts] = _no_facts


@dataclass(slots=True)
class RunOutcome:
    """One measured run of one tool."""

    status: str
    """``ok``, ``failed``, ``timeout``, ``checksum`` (wrong sha256) or ``unavailable``."""
    seconds: float | None = None
    peak_rss_bytes: int | None = None
    sha256_ok: bool | None = None
    last_byte_to_available_s: float | None = None
    note: str = ""
    argv: list[str] = field(default_factory=list)


Builder = Callable[[Target, Path], Invocation]


# -- the tools -------------------------------------------------------------------------


def curl_invocation(target: Target, dest: Path) -> Invocation:
    """``curl -s -o file URL`` (plus -S/--fail so errors are seen, and no proxy)."""
    out = dest / FILENAME
    argv = [target.binaries["curl"], "-s", "-S", "--fail", "--noproxy", "*", "-o", str(out)]
    return Invocation([*argv, target.blob_url], child_env(), lambda: _existing(out))


def aria2c_builder(connections: int) -> Builder:
    """``aria2c -xN -sN -k1M`` into `dest` (quiet, no config file, otherwise defaults)."""

    def build(target: Target, dest: Path) -> Invocation:
        argv = [
            target.binaries["aria2c"],
            f"-x{connections}",
            f"-s{connections}",
            "-k1M",
            "--no-conf",
            "--quiet",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            f"--dir={dest}",
            f"--out={FILENAME}",
            target.blob_url,
        ]
        return Invocation(argv, child_env(), lambda: _existing(dest / FILENAME))

    return build


def with_fsync(build: Builder) -> Builder:
    """The same tool, then ``sync FILE`` (fsync) of what it wrote: the cost of durability.

    curl and aria2c leave the file in dirty page cache; a tool that must not lose a
    verified file (modeldepot fsyncs before rename) pays the flush inside its own time.
    """

    def build_durable(target: Target, dest: Path) -> Invocation:
        inner = build(target, dest)
        script = 'file=$1; shift; "$@" && sync -- "$file"'
        argv = ["sh", "-c", script, "sh", str(dest / FILENAME), *inner.argv]
        return Invocation(argv, inner.env, inner.locate, inner.parse)

    return build_durable


def hf_hub_invocation(target: Target, dest: Path) -> Invocation:
    """huggingface_hub ``snapshot_download`` with a fresh cache, plain HTTP (no Xet, no
    hf_transfer), progress bars off."""
    payload = target.published.payload
    env = child_env(
        {
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_ENABLE_HF_TRANSFER": "0",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_ENDPOINT": target.hub_endpoint,
            "HF_HOME": str(dest / "hf_home"),
        }
    )
    cache = dest / "cache"
    argv = [sys.executable, "-c", _HF_SCRIPT, payload.repo_id, str(cache), target.hub_endpoint]
    return Invocation(argv, env, lambda: snapshot_file(cache, target.published))


def hashlib_invocation(target: Target, _dest: Path) -> Invocation:
    """``hashlib.file_digest(f, "sha256")`` of the served blob (page-cache warm)."""
    argv = [sys.executable, "-c", _HASHLIB_SCRIPT, str(target.published.blob)]
    blob = target.published.blob
    return Invocation(argv, child_env(), lambda: blob, parse=_parse_hashlib)


def _parse_hashlib(stdout: str) -> Facts:
    data = json.loads(stdout.strip().splitlines()[-1])
    return Facts(seconds=float(data["seconds"]), sha256=str(data["sha256"]))


# -- modeldepot ------------------------------------------------------------------------


def modeldepot_env(target: Target | None, dest: Path, *, service_port: int) -> dict[str, str]:
    """The environment of ``python -m modeldepot pull`` for one run.

    Fresh models and data dirs, the local hub as HF_ENDPOINT, the benchmark catalogue,
    loopback sources allowed, and a port where no service listens (so ``pull`` runs
    in-process and its own memory is what is measured).
    """
    extra = {
        "MODELDEPOT_MODELS_DIR": str(dest / "models"),
        "MODELDEPOT_DATA_DIR": str(dest / "data"),
        "MODELDEPOT_ALLOWED_SOURCE_HOSTS": '["127.0.0.1"]',
        "MODELDEPOT_PORT": str(service_port),
        "HF_HUB_DISABLE_XET": "1",
    }
    if target is not None:
        extra["HF_ENDPOINT"] = target.hub_endpoint
        extra["MODELDEPOT_CATALOG"] = str(target.catalog)
    return child_env(extra)


def modeldepot_builder(*, json_events: bool, service_port: int) -> Builder:
    """Build ``python -m modeldepot pull <model_id> [--json]`` and its environment.

    This is the one place that knows how modeldepot is invoked. With `json_events`, the
    last ``{"event": "completed", "last_byte_at": t1, "available_at": t2, ...}`` line on
    stdout (ISO 8601 UTC timestamps, as the API writes them) gives "last byte ->
    AVAILABLE" (t2 - t1); without it that figure is n/a.
    """

    def build(target: Target, dest: Path) -> Invocation:
        argv = [sys.executable, "-m", "modeldepot", "pull", target.published.payload.model_id]
        if json_events:
            argv.append("--json")
        env = modeldepot_env(target, dest, service_port=service_port)
        models = dest / "models"
        return Invocation(
            argv, env, lambda: snapshot_file(models, target.published), parse=parse_completed
        )

    return build


def modeldepot_service_builder(*, service_port: int) -> Builder:
    """The running service, timed from the start request to COMPLETED (see SERVICE_SCRIPT)."""

    def build(target: Target, dest: Path) -> Invocation:
        model = target.published.payload.model_id
        argv = [sys.executable, "-c", SERVICE_SCRIPT, model, str(service_port)]
        env = modeldepot_env(target, dest, service_port=service_port)
        models = dest / "models"
        return Invocation(
            argv, env, lambda: snapshot_file(models, target.published), parse=parse_completed
        )

    return build


@dataclass(frozen=True, slots=True)
class Probe:
    """Whether ``python -m modeldepot pull`` exists, and whether it takes ``--json``."""

    available: bool
    json_events: bool
    reason: str


def probe_modeldepot(scratch: Path, *, service_port: int) -> Probe:
    """Run ``python -m modeldepot pull --help``; unavailable if it fails."""
    scratch.mkdir(parents=True, exist_ok=True)
    run = run_measured(
        [sys.executable, "-m", "modeldepot", "pull", "--help"],
        env=modeldepot_env(None, scratch, service_port=service_port),
        timeout_s=_PROBE_TIMEOUT_S,
        log_dir=scratch / "logs",
    )
    if not run.ok:
        why = "timed out" if run.timed_out else f"exit {run.returncode}"
        detail = _last_line(run.stderr_tail or run.stdout)
        reason = f"`python -m modeldepot pull --help` failed ({why}): {detail}"
        return Probe(available=False, json_events=False, reason=reason)
    return Probe(available=True, json_events="--json" in run.stdout, reason="")


def parse_completed(stdout: str) -> Facts:
    """Facts from the last ``{"event": "completed", ...}`` JSON line, if any."""
    for line in reversed(stdout.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "completed":
            # Only the service driver times itself (from the start request); the CLI's
            # own "seconds" would leave out its start-up, so its wall time is used.
            seconds = event.get("timed_seconds")
            own = float(seconds) if isinstance(seconds, int | float) else None
            try:
                gap = _seconds_between(event["last_byte_at"], event["available_at"])
            except (KeyError, TypeError, ValueError):
                return Facts(seconds=own)
            return Facts(seconds=own, last_byte_to_available_s=gap)
    return Facts()


def _seconds_between(start: object, end: object) -> float:
    """Seconds from ``start`` to ``end``, two ISO 8601 timestamps (raises ValueError,
    TypeError for anything else)."""
    if not isinstance(start, str) or not isinstance(end, str):
        raise TypeError("timestamps are ISO 8601 strings")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


# -- running ---------------------------------------------------------------------------


def run_tool(
    build: Builder, target: Target, run_dir: Path, *, timeout_s: float, keep: bool
) -> RunOutcome:
    """Run one tool once into ``run_dir/dest`` and check what it produced.

    Logs stay in ``run_dir/logs``; the destination is removed afterwards unless `keep`.
    """
    dest = run_dir / "dest"
    shutil.rmtree(run_dir, ignore_errors=True)
    dest.mkdir(parents=True)
    invocation = build(target, dest)
    try:
        run = run_measured(
            invocation.argv, env=invocation.env, timeout_s=timeout_s, log_dir=run_dir / "logs"
        )
        return _judge(run, invocation, target.published)
    finally:
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)


def _judge(run: ProcessRun, invocation: Invocation, published: Published) -> RunOutcome:
    outcome = RunOutcome(
        status="ok", seconds=run.seconds, peak_rss_bytes=run.peak_rss_bytes, argv=list(run.argv)
    )
    if run.timed_out:
        outcome.status, outcome.note = "timeout", f"killed after {run.seconds:.1f} s"
        return outcome
    if run.returncode != 0:
        outcome.status = "failed"
        outcome.note = f"exit {run.returncode}: {_last_line(run.stderr_tail or run.stdout)}"
        return outcome
    try:
        facts = invocation.parse(run.stdout)
    except (ValueError, KeyError, IndexError) as exc:
        outcome.status, outcome.note = "failed", f"unreadable output: {exc}"
        return outcome
    outcome.seconds = facts.seconds if facts.seconds is not None else run.seconds
    outcome.last_byte_to_available_s = facts.last_byte_to_available_s
    digest = facts.sha256 or _digest_of(invocation.locate())
    outcome.sha256_ok = digest == published.sha256
    if not outcome.sha256_ok:
        outcome.status = "checksum"
        outcome.note = "no result file found" if digest is None else f"sha256 {digest[:12]}..."
    return outcome


def snapshot_file(cache_dir: Path, published: Published) -> Path | None:
    """The payload file in an HF hub cache: ``models--org--name/snapshots/*/<file>``."""
    matches = sorted((cache_dir / published.payload.cache_folder).glob(f"snapshots/*/{FILENAME}"))
    return matches[0] if matches else None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _digest_of(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    with path.open("rb") as reader:
        return hashlib.file_digest(reader, "sha256").hexdigest()


def _last_line(text: str) -> str:
    """The last meaningful line of a tool's output, without rich's box drawing."""
    lines = [_BOX.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][-300:] if lines else "no output"

"""The machine side of the benchmark: Debian packages, machine facts, tool versions, and
the environment children run in.

`ensure_binaries` installs nginx, curl and aria2 with apt when any is missing (one
``apt-get update``, then ``apt-get install -y nginx curl aria2``) and is a no-op otherwise,
so a fresh machine needs nothing done by hand.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

APT_PACKAGES: tuple[str, ...] = ("nginx", "curl", "aria2")
BINARIES: tuple[str, ...] = ("nginx", "curl", "aria2c")
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")  # nginx lives here, often not on PATH
_APT_TIMEOUT_S = 900.0
_VERSION_TIMEOUT_S = 30.0
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")
_HF_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE")


class SetupError(RuntimeError):
    """The benchmark's prerequisites cannot be met (no root for apt, apt failed, ...)."""


def find_binary(name: str) -> str | None:
    """The executable `name` on PATH or in the sbin directories, or None."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def ensure_binaries(
    packages: Sequence[str] = APT_PACKAGES, binaries: Sequence[str] = BINARIES
) -> dict[str, str]:
    """Install the apt `packages` if one of `binaries` is missing; return {binary: path}.

    The defaults are what downloads.py needs; status.py asks for ``("wrk",), ("wrk",)``.

    Raises:
        SetupError: not root and no passwordless sudo, apt failed, or a binary is still
            missing afterwards.
    """
    if any(find_binary(name) is None for name in binaries):
        prefix = _privilege_prefix(packages)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print(f"installing {' '.join(packages)} with apt-get ...", flush=True)
        _apt([*prefix, "apt-get", "update"], env)
        _apt([*prefix, "apt-get", "install", "-y", *packages], env)
    paths = {name: find_binary(name) for name in binaries}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise SetupError(f"still missing after apt-get install: {', '.join(missing)}")
    return {name: path for name, path in paths.items() if path is not None}


def _privilege_prefix(packages: Sequence[str]) -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n"]
    raise SetupError(
        f"{', '.join(packages)} must be installed and this is neither root nor has sudo"
    )


def _apt(argv: Sequence[str], env: Mapping[str, str]) -> None:
    try:
        done = subprocess.run(
            list(argv), env=dict(env), timeout=_APT_TIMEOUT_S, capture_output=True, text=True
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{' '.join(argv)} timed out after {_APT_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every timed child: no proxies (traffic stays on 127.0.0.1), no
    Hugging Face token or cache settings, no modeldepot settings inherited, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in _PROXY_VARS
        and key not in _HF_VARS
        and not key.startswith("MODELDEPOT_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.update(extra or {})
    return env


def machine_facts() -> dict[str, str]:
    """nproc, CPU model, kernel, memory, OS and Python of this machine."""
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "memory": f"{_mem_total_gib():.1f} GiB",
        "os": _os_name(),
        "python": platform.python_version(),
    }


def tool_versions(binaries: Mapping[str, str]) -> dict[str, str]:
    """First version line of curl, aria2c and nginx; versions of the Python packages used."""
    versions = {
        "curl": _first_line([binaries["curl"], "--version"]),
        "aria2c": _first_line([binaries["aria2c"], "--version"]),
        "nginx": _first_line([binaries["nginx"], "-v"]),
    }
    for package in ("huggingface_hub", "httpx", "modeldepot"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["modeldepot commit"] = _git_describe(Path(__file__).resolve().parents[2])
    versions["python executable"] = sys.executable
    return versions


def _first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout or done.stderr).strip()  # nginx -v prints to stderr
    return text.splitlines()[0] if text else "unknown"


def _git_describe(repo: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    except OSError:
        pass
    return platform.platform()

"""Run one subprocess with a hard timeout; measure its wall time and peak RSS.

The child starts in a new session, so it and every process it spawns share a session id
equal to its pid. Every `SAMPLE_INTERVAL_S` the tree's resident memory is read from
``/proc`` (``VmRSS`` summed over the session, and each process's own high-water mark
``VmHWM``); the peak is the larger of the two. A separate thread reaps the child with
``waitpid`` the moment it exits, so the wall time is not rounded to the sampling interval.
(The kernel's ``ru_maxrss`` is not used: it counts the forked copy of this harness before
``exec``.)

On timeout, or if the harness is interrupted, the whole session is killed with SIGKILL
(``killpg`` of the child's own process group, i.e. only processes this harness started).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_INTERVAL_S = 0.05
_TAIL_CHARS = 4000


@dataclass(frozen=True, slots=True)
class ProcessRun:
    """What one measured subprocess did."""

    argv: tuple[str, ...]
    returncode: int | None
    """Exit code (negative: killed by that signal); None if it had to be killed on timeout."""
    seconds: float
    peak_rss_bytes: int
    timed_out: bool
    stdout: str
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    log_dir: Path,
    cwd: Path | None = None,
) -> ProcessRun:
    """Run `argv` to completion (or `timeout_s`), sampling its process tree's memory.

    stdout and stderr go to files in `log_dir` (never pipes, so a chatty tool cannot block).

    Raises:
        OSError: the program cannot be started.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        waiter = _Reaper(proc.pid)
        waiter.start()
        try:
            peak, timed_out = _sample_until_exit(proc.pid, waiter, started + timeout_s)
        except BaseException:
            _kill_session(proc.pid)
            waiter.join()
            raise
        finally:
            _kill_session(proc.pid)  # stragglers the child left behind
        waiter.join()
    proc.returncode = waiter.returncode  # reaped by waitpid; keep Popen consistent
    return ProcessRun(
        argv=tuple(argv),
        returncode=None if timed_out else waiter.returncode,
        seconds=waiter.ended - started,
        peak_rss_bytes=peak,
        timed_out=timed_out,
        stdout=out_path.read_text(errors="replace"),
        stderr_tail=err_path.read_text(errors="replace")[-_TAIL_CHARS:],
    )


class _Reaper(threading.Thread):
    """Waits for the child and records when it exited and its exit code."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"reaper-{pid}", daemon=True)
        self.pid = pid
        self.done = threading.Event()
        self.ended = 0.0
        self.returncode = 0

    def run(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self.ended = time.perf_counter()
        self.returncode = os.waitstatus_to_exitcode(status)
        self.done.set()


def _sample_until_exit(pid: int, waiter: _Reaper, deadline: float) -> tuple[int, bool]:
    """Sample memory until the child exits; on the deadline kill it. Returns (peak, timed_out)."""
    peak = 0
    while True:
        peak = max(peak, session_memory(pid))
        if waiter.done.wait(SAMPLE_INTERVAL_S):
            return peak, False
        if time.perf_counter() > deadline:
            _kill_session(pid)
            waiter.done.wait()
            return peak, True


def _kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def session_memory(session_id: int) -> int:
    """Bytes: max(sum of VmRSS, largest VmHWM) over the processes of this session."""
    total = 0
    largest_hwm = 0
    for pid in _session_pids(session_id):
        rss, hwm = _status_memory(pid)
        total += rss
        largest_hwm = max(largest_hwm, hwm)
    return max(total, largest_hwm)


def _session_pids(session_id: int) -> list[int]:
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # Fields after the ")" closing the command name: state ppid pgrp session ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 3 and int(fields[3]) == session_id:
            pids.append(int(entry.name))
    return pids


def _status_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in bytes; zeros if it is gone or a zombie."""
    rss = hwm = 0
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return rss, hwm

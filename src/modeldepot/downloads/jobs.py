"""A download job in memory: its persisted fields, live progress, speed and ETA.

The database row is the durable copy (status, priority, retries, outcome); bytes on disk
are described by each partial file's checkpoint. ``Job`` joins the two for the API.
Only ``downloads/ledger.py`` changes a job's ``status`` (through :meth:`Job.move_to`).

Progress counts bytes that stay: verified files, plus what each unfinished file has
written (live while it transfers, kept in ``partial`` once the transfer stops), so a
paused or interrupted download keeps reporting the bytes it will resume from.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from modeldepot.catalog.manifest import ManifestFile
from modeldepot.downloads.limiter import TokenBucket
from modeldepot.downloads.models import DownloadRow
from modeldepot.downloads.schemas import (
    ActiveDownload,
    FileProgress,
    Priority,
    ProgressResponse,
)
from modeldepot.downloads.state import DownloadStatus, check_transition
from modeldepot.downloads.transfer import FileFetch
from modeldepot.units import MB


class SpeedMeter:
    """Bytes per second over a sliding window of a few seconds."""

    def __init__(self, window: float = 3.0) -> None:
        self._window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def sample(self, total: int) -> None:
        now = time.monotonic()
        if self._samples and now - self._samples[-1][0] < 0.05:
            return  # enough resolution; keeps the window short however often asked
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()

    @property
    def bytes_per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return max(0.0, (b1 - b0) / (t1 - t0)) if t1 > t0 else 0.0

    def reset(self) -> None:
        self._samples.clear()


@dataclass
class Job:
    id: str
    model_id: str
    repo_id: str
    revision: str
    commit: str
    status: DownloadStatus
    priority: Priority
    seq: int
    max_retries: int
    bandwidth_limit_mbps: float
    created_at: datetime
    retry_count: int = 0
    total_bytes: int = 0
    error_code: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    persisted_done: int = 0
    files: tuple[ManifestFile, ...] = ()
    verified: dict[str, int] = field(default_factory=dict)
    fetches: dict[str, FileFetch] = field(default_factory=dict)
    bucket: TokenBucket = field(default_factory=TokenBucket)
    meter: SpeedMeter = field(default_factory=SpeedMeter)
    task: asyncio.Task[None] | None = None
    last_byte_at: float | None = None
    available_at: float | None = None
    refetch: frozenset[str] = frozenset()
    """Digests fetched again although a blob exists (repair: its bytes are wrong)."""
    run: int = 0
    """Incremented each time the job starts transferring; an outcome of an older run is
    stale and dropped."""
    partial: dict[str, int] = field(default_factory=dict)
    """Bytes written to unfinished files by transfers that have stopped (kept on disk)."""
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    save_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.bucket.set_rate(self.bandwidth_limit_mbps)

    @classmethod
    def from_row(cls, row: DownloadRow) -> Job:
        return cls(
            id=row.id,
            model_id=row.model_id,
            repo_id=row.repo_id,
            revision=row.revision,
            commit=row.commit_hash,
            status=DownloadStatus(row.status),
            priority=Priority(row.priority),
            seq=row.seq,
            max_retries=row.max_retries,
            bandwidth_limit_mbps=row.bandwidth_limit_mbps,
            created_at=row.created_at,
            retry_count=row.retry_count,
            total_bytes=row.total_bytes,
            error_code=row.error_code,
            error_message=row.error_message,
            started_at=row.started_at,
            finished_at=row.finished_at,
            persisted_done=row.done_bytes,
            refetch=frozenset(row.refetch or ()),
        )

    def to_row(self) -> DownloadRow:
        return DownloadRow(
            id=self.id,
            model_id=self.model_id,
            repo_id=self.repo_id,
            revision=self.revision,
            commit_hash=self.commit,
            status=self.status.value,
            priority=self.priority.value,
            seq=self.seq,
            max_retries=self.max_retries,
            retry_count=self.retry_count,
            bandwidth_limit_mbps=self.bandwidth_limit_mbps,
            total_bytes=self.total_bytes,
            done_bytes=self.done_bytes,
            error_code=self.error_code,
            error_message=self.error_message,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            updated_at=datetime.now(UTC),
            refetch=sorted(self.refetch),
        )

    def move_to(self, status: DownloadStatus) -> None:
        """Change status through the transition table (raises ``IllegalTransition``).
        Only the ledger calls this."""
        self.status = check_transition(self.status, status)
        now = datetime.now(UTC)
        if status == DownloadStatus.DOWNLOADING and self.started_at is None:
            self.started_at = now
        if status.is_terminal:
            self.finished_at = now
        if status != DownloadStatus.DOWNLOADING:
            self.meter.reset()

    @property
    def done_bytes(self) -> int:
        if not self.files:
            return self.persisted_done
        unfinished = 0
        for manifest_file in self.files:
            path = manifest_file.path
            if path in self.verified:
                continue
            fetch = self.fetches.get(path)
            unfinished += fetch.done_bytes if fetch is not None else self.partial.get(path, 0)
        return sum(self.verified.values()) + unfinished

    def keep_partial_progress(self, *, durable: bool = False) -> None:
        """The transfer stopped: remember what each unfinished file has on disk (with
        ``durable``, only what its last checkpoint counts: after a failure that is what
        the next attempt resumes from)."""
        for path, fetch in self.fetches.items():
            if path not in self.verified:
                self.partial[path] = fetch.durable_bytes if durable else fetch.done_bytes
        self.fetches.clear()

    def forget_partial_progress(self) -> None:
        """The partial files were removed: nothing unfinished is on disk any more."""
        self.partial.clear()
        self.fetches.clear()

    @property
    def progress_percent(self) -> float:
        if self.status == DownloadStatus.COMPLETED:
            return 100.0
        if not self.total_bytes:
            return 0.0
        return round(min(100.0, 100 * self.done_bytes / self.total_bytes), 2)

    @property
    def speed_bps(self) -> float:
        if self.status != DownloadStatus.DOWNLOADING:
            return 0.0
        self.meter.sample(self.done_bytes)  # whoever asks adds a sample: no ticker needed
        return self.meter.bytes_per_second

    @property
    def eta_seconds(self) -> int | None:
        speed = self.speed_bps
        if self.status != DownloadStatus.DOWNLOADING or speed <= 0:
            return None
        return max(0, round((self.total_bytes - self.done_bytes) / speed))

    @property
    def can_pause(self) -> bool:
        return self.status in (DownloadStatus.QUEUED, DownloadStatus.DOWNLOADING)

    @property
    def can_resume(self) -> bool:
        return self.status == DownloadStatus.PAUSED

    @property
    def can_cancel(self) -> bool:
        return not self.status.is_terminal

    def file_progress(self) -> list[FileProgress]:
        items = []
        for manifest_file in self.files:
            size = manifest_file.size or 0
            if manifest_file.path in self.verified:
                items.append(
                    FileProgress(
                        path=manifest_file.path, size=size, downloaded=size, state="verified"
                    )
                )
                continue
            fetch = self.fetches.get(manifest_file.path)
            kept = self.partial.get(manifest_file.path, 0)
            items.append(
                FileProgress(
                    path=manifest_file.path,
                    size=size,
                    downloaded=fetch.done_bytes if fetch else kept,
                    state="downloading" if fetch else "pending",
                )
            )
        return items

    def progress(self, *, queue_position: int | None) -> ProgressResponse:
        return ProgressResponse(
            model_id=self.model_id,
            status=self.status,
            progress_percent=self.progress_percent,
            downloaded_mb=round(self.done_bytes / MB, 3),
            total_mb=round(self.total_bytes / MB, 3),
            speed_mbps=round(self.speed_bps / MB, 3),
            eta_seconds=self.eta_seconds,
            retry_count=self.retry_count,
            max_retries=self.max_retries,
            error_message=self.error_message,
            can_pause=self.can_pause,
            can_resume=self.can_resume,
            can_cancel=self.can_cancel,
            download_id=self.id,
            priority=self.priority,
            bandwidth_limit_mbps=self.bandwidth_limit_mbps,
            error_code=self.error_code,
            queue_position=queue_position,
            commit=self.commit,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            # Kept as Unix times internally; the API speaks ISO 8601 UTC (issue 9).
            last_byte_at=_utc(self.last_byte_at),
            available_at=_utc(self.available_at),
            files=self.file_progress(),
        )

    def active_entry(self, *, queue_position: int | None) -> ActiveDownload:
        running = self.status == DownloadStatus.DOWNLOADING
        return ActiveDownload(
            model_id=self.model_id,
            status=self.status,
            progress_percent=self.progress_percent,
            speed_mbps=round(self.speed_bps / MB, 3) if running else None,
            eta_seconds=self.eta_seconds if running else None,
            queue_position=queue_position,
            download_id=self.id,
            priority=self.priority,
        )


def _utc(unix_time: float | None) -> datetime | None:
    return None if unix_time is None else datetime.fromtimestamp(unix_time, UTC)

"""Rich progress bars for ``modeldepot pull``: one for the model, one per file in flight.

The display is fed ``ProgressResponse`` snapshots (from this process or from a running
service, the same model either way). The total bar shows bytes, speed and ETA with the
download's status and how many files are verified; a file gets its own bar while it is
being fetched and loses it once verified, so the screen holds only the work in flight.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from modeldepot.downloads.schemas import ProgressResponse
from modeldepot.units import MB

REFRESH_PER_SECOND = 4


class _SpeedColumn(TransferSpeedColumn):
    """The service's measured speed for the total bar (field ``speed``), rich's own
    estimate for file bars."""

    def render(self, task: Task) -> Text:
        speed = task.fields.get("speed")
        if speed is None:
            return super().render(task)
        return Text(f"{speed / MB:,.1f} MB/s", style="progress.data.speed")


class _EtaColumn(TimeRemainingColumn):
    """The service's ETA for the total bar (field ``eta``), rich's own for file bars."""

    def render(self, task: Task) -> Text:
        if "eta" not in task.fields:
            return super().render(task)
        eta = task.fields["eta"]
        if eta is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(eta), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


class PullDisplay:
    """Live bars on ``console``; use as a context manager around the pull."""

    def __init__(self, *, model_id: str, console: Console) -> None:
        self._model_id = model_id
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=False),
            _SpeedColumn(),
            _EtaColumn(),
            console=console,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        self._total: TaskID | None = None
        self._files: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def note(self, text: str) -> None:
        """A line above the bars (e.g. "attached to the running download")."""
        self._progress.console.print(text, markup=False, highlight=False)

    def update(self, snapshot: ProgressResponse) -> None:
        self._update_total(snapshot)
        if snapshot.status.is_terminal:  # nothing is in flight any more
            for task in self._files.values():
                self._progress.remove_task(task)
            self._files.clear()
            return
        for file in snapshot.files:
            self._update_file(file.path, state=file.state, size=file.size, done=file.downloaded)

    def _update_total(self, snapshot: ProgressResponse) -> None:
        files = snapshot.files
        total = sum(f.size for f in files) if files else round(snapshot.total_mb * MB)
        done = sum(f.downloaded for f in files) if files else round(snapshot.downloaded_mb * MB)
        description = f"{self._model_id} {snapshot.status.value.lower()}"
        if files:
            verified = sum(1 for f in files if f.state == "verified")
            description += f" {verified}/{len(files)} files"
        running = snapshot.status.value == "DOWNLOADING"
        if self._total is None:
            self._total = self._progress.add_task(description)
        self._progress.update(
            self._total,
            description=description,
            total=total or None,
            completed=done,
            speed=snapshot.speed_mbps * MB if running else None,
            eta=snapshot.eta_seconds if not snapshot.status.is_terminal else 0,
        )

    def _update_file(self, path: str, *, state: str, size: int, done: int) -> None:
        task = self._files.get(path)
        if state != "downloading":
            if task is not None:  # verified (or back to pending): its bar is no longer news
                self._progress.remove_task(task)
                del self._files[path]
            return
        if task is None:
            self._files[path] = self._progress.add_task(f"  {path}", total=size, completed=done)
        else:
            self._progress.update(task, completed=done)

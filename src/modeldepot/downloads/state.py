"""Download job states and the transitions allowed between them.

::

    QUEUED ──> DOWNLOADING ──> VERIFYING ──> COMPLETED
      │  ^          │  │            │
      │  └─ PAUSED <┘  └─> FAILED <─┘      (FAILED and CANCELLED can be started again
      └──────┴─────────────> CANCELLED      as a new job; COMPLETED is final)

An illegal transition raises ``IllegalTransition`` (a ``Conflict``): it is never ignored.
"""

from __future__ import annotations

from enum import StrEnum

from modeldepot.errors import Conflict


class IllegalTransition(Conflict):
    code = "ILLEGAL_TRANSITION"


class DownloadStatus(StrEnum):
    QUEUED = "QUEUED"
    DOWNLOADING = "DOWNLOADING"
    PAUSED = "PAUSED"
    VERIFYING = "VERIFYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """Occupies the model: a second start is a conflict."""
        return not self.is_terminal


_TERMINAL = frozenset({DownloadStatus.COMPLETED, DownloadStatus.FAILED, DownloadStatus.CANCELLED})

S = DownloadStatus
ALLOWED: dict[DownloadStatus, frozenset[DownloadStatus]] = {
    S.QUEUED: frozenset({S.DOWNLOADING, S.PAUSED, S.CANCELLED, S.FAILED}),
    S.DOWNLOADING: frozenset({S.VERIFYING, S.PAUSED, S.CANCELLED, S.FAILED, S.QUEUED}),
    S.VERIFYING: frozenset({S.COMPLETED, S.FAILED, S.DOWNLOADING, S.CANCELLED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


def check_transition(current: DownloadStatus, new: DownloadStatus) -> DownloadStatus:
    """Return ``new`` if a job may go from ``current`` to it.

    Raises:
        IllegalTransition: the move is not in ``ALLOWED``.
    """
    if new not in ALLOWED[current]:
        raise IllegalTransition(
            f"A {current.value} download cannot become {new.value}",
            details={"status": current.value, "requested": new.value},
        )
    return new

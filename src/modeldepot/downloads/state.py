"""Download job states, the transitions allowed between them, and what each action does.

::

    QUEUED ──> DOWNLOADING ──> VERIFYING ──> COMPLETED
      │  ^          │  │            │
      │  └─ PAUSED <┘  └─> FAILED <─┘      (FAILED and CANCELLED can be started again
      └──────┴─────────────> CANCELLED      as a new job; COMPLETED is final)

Who moves a job (``downloads/ledger.py`` is the only code that writes ``status``):

* a user's action (``pause``, ``resume``, ``cancel``) — :func:`plan_action` says, for the
  job's current status, which status the action produces, that it changes nothing (a
  second pause of a paused download), or why it cannot apply (a 409 naming the status);
* the scheduler: QUEUED -> DOWNLOADING when a slot frees up;
* the transfer's outcome: DOWNLOADING -> VERIFYING -> COMPLETED, or -> FAILED. An outcome
  carries the run it belongs to and is dropped if the job was paused, cancelled or
  restarted meanwhile, so a stale outcome can never move a job;
* start-up recovery: DOWNLOADING/VERIFYING of a stopped process -> QUEUED.

Every action on one model is serialised (one lock per model), so these decisions are
always taken on the status the job really has; ``check_transition`` stays as the last
guard and raising from it is a bug, not an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    S.VERIFYING: frozenset({S.COMPLETED, S.FAILED, S.QUEUED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


def check_transition(current: DownloadStatus, new: DownloadStatus) -> DownloadStatus:
    """Return ``new`` if a job may go from ``current`` to it.

    Raises:
        IllegalTransition: the move is not in ``ALLOWED`` (a bug: callers plan first).
    """
    if new not in ALLOWED[current]:
        raise IllegalTransition(
            f"A {current.value} download cannot become {new.value}",
            details={"status": current.value, "requested": new.value},
        )
    return new


class UserAction(StrEnum):
    pause = "pause"
    resume = "resume"
    cancel = "cancel"


@dataclass(frozen=True)
class ActionPlan:
    """What a user's action does to a job in a given status."""

    target: DownloadStatus
    changes: bool  # False: the job is already where the action leads (answered, not moved)


# action -> (statuses it moves from, the status it leads to, statuses it already holds)
_ACTIONS: dict[UserAction, tuple[frozenset[DownloadStatus], DownloadStatus, frozenset[S]]] = {
    UserAction.pause: (frozenset({S.QUEUED, S.DOWNLOADING}), S.PAUSED, frozenset({S.PAUSED})),
    UserAction.resume: (
        frozenset({S.PAUSED}),
        S.QUEUED,
        frozenset({S.QUEUED, S.DOWNLOADING}),
    ),
    UserAction.cancel: (frozenset({S.QUEUED, S.DOWNLOADING, S.PAUSED}), S.CANCELLED, frozenset()),
}


def plan_action(action: UserAction, current: DownloadStatus) -> ActionPlan:
    """The outcome of ``action`` on a job that is ``current``.

    Raises:
        Conflict: the action does not apply to a job in that status (409, says why).
    """
    moves_from, target, holds = _ACTIONS[action]
    if current in moves_from:
        check_transition(current, target)  # the table above never disagrees with ALLOWED
        return ActionPlan(target=target, changes=True)
    if current in holds:
        return ActionPlan(target=current, changes=False)
    raise Conflict(
        f"A {current.value} download cannot be {_PAST[action]}",
        details={"status": current.value, "action": action.value},
    )


_PAST = {UserAction.pause: "paused", UserAction.resume: "resumed", UserAction.cancel: "cancelled"}

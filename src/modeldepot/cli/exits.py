"""How the command line reports a failure: one line on stderr and an exit code.

Exit codes come from one table over the error tree (``EXIT_CODES``, first match wins).
A failure is a ``Problem``, a code and a message, whatever it came from: an exception
raised in this process, the error envelope of a running service, or a FAILED download's
``error_code``; all three map through the same table by their code. The codes are stable
(``tests/cli/test_exit_codes.py`` pins the code of every error class):

====  ==================================  ==================================================
exit  meaning                             error codes (class in ``modeldepot.errors``)
====  ==================================  ==================================================
0     success
1     any other failure                   ``INTEGRITY_ERROR``, ``CHECKSUM_MISMATCH``,
                                          ``UNSAFE_SOURCE``, ``RATE_LIMITED``,
                                          ``INTERNAL_ERROR``, ...
2     the command line or a value is      ``VALIDATION_ERROR``, ``INVALID_MODEL_ID``,
      invalid (also typer's usage errors) ``INVALID_CHECK_ID``, ... (``InvalidInput``)
3     not found                           ``MODEL_NOT_FOUND``, ``DOWNLOAD_NOT_FOUND``,
                                          ``CHECK_NOT_FOUND``, ... (``NotFound``)
4     the configuration is unusable       ``CONFIG_ERROR``, ``CATALOG_ERROR``
5     storage                             ``STORAGE_ERROR``, ``INSUFFICIENT_STORAGE``,
                                          ``DISK_FULL``, ``STORAGE_READ_ONLY``
6     the hub (upstream)                  ``UPSTREAM_*``, ``REDIRECT_ERROR``,
                                          ``TRANSFER_INTERRUPTED`` (``UpstreamError``)
7     another process holds the data      ``ALREADY_RUNNING``
8     no service answers                  ``SERVICE_UNREACHABLE``
9     refused: no or a wrong API key, or  ``UNAUTHORIZED``, ``FORBIDDEN``
      a role that does not allow it
10    a state refuses the action now      409 conflicts: ``CONFLICT``, ``DOWNLOAD_IN_PROGRESS``,
      (409)                               ``MODEL_NOT_INSTALLED``, ``REVISION_UNAVAILABLE``,
                                          ``FEATURE_DISABLED``, ``QUEUE_ENTRY_NOT_READY``,
                                          ``KEY_EXISTS``, ... (``Conflict``)
130   interrupted (Ctrl-C)
====  ==================================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from modeldepot.errors import (
    AlreadyRunning,
    ConfigError,
    Conflict,
    DepotError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnreachable,
    StorageError,
    Unauthorized,
    UpstreamError,
)

EXIT_CODES: tuple[tuple[type[DepotError], int], ...] = (
    (InvalidInput, 2),
    (NotFound, 3),
    (AlreadyRunning, 7),  # before ConfigError: "stop the other one", not "fix the config"
    (ConfigError, 4),
    (StorageError, 5),
    (UpstreamError, 6),
    (ServiceUnreachable, 8),
    (Unauthorized, 9),
    (Forbidden, 9),
    (Conflict, 10),  # a state that refuses the action now (409): often "wait and retry"
    (DepotError, 1),
)
INTERRUPTED = 130  # the shell's convention for SIGINT


@dataclass(frozen=True)
class Problem:
    """Why a command failed, in the error tree's vocabulary."""

    code: str
    message: str

    @classmethod
    def of(cls, error: DepotError) -> Problem:
        return cls(code=error.code, message=error.message)

    @property
    def exit_code(self) -> int:
        kind = _error_classes().get(self.code, DepotError)
        return next(code for base, code in EXIT_CODES if issubclass(kind, base))


class CommandFailed(Exception):
    """A ``Problem`` raised through layers that do not print (e.g. the remote client);
    ``details`` are the error's details (e.g. the running download's id on a conflict)."""

    def __init__(self, problem: Problem, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{problem.code}: {problem.message}")
        self.problem = problem
        self.details: dict[str, Any] = details or {}

    @classmethod
    def of(cls, error: DepotError) -> CommandFailed:
        return cls(Problem.of(error), details=error.details)


def fail(problem: Problem, *, console: Console) -> typer.Exit:
    """Print ``problem`` on ``console`` (stderr) and return the exit to raise."""
    line = Text("error", style="red")
    line.append(f" {problem.code}: {problem.message}", style="")
    console.print(line, soft_wrap=True)
    return typer.Exit(problem.exit_code)


def _error_classes() -> dict[str, type[DepotError]]:
    """Every error class by its code (classes defined outside errors.py included)."""
    classes: dict[str, type[DepotError]] = {}
    pending: list[type[DepotError]] = [DepotError]
    while pending:
        kind = pending.pop()
        classes.setdefault(kind.code, kind)
        pending.extend(kind.__subclasses__())
    return classes

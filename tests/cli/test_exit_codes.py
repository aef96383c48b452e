"""The exit code of every error class is pinned here: scripts depend on them, so changing
one (or adding an error class) must be a deliberate edit of this table and of the table
in ``modeldepot.cli.exits``'s docstring."""

from __future__ import annotations

import modeldepot.api.app
import modeldepot.cli.main  # noqa: F401 - and the client's
from modeldepot.cli.exits import EXIT_CODES, Problem
from modeldepot.errors import DepotError

EXPECTED = {
    "INTERNAL_ERROR": 1,
    # 404
    "NOT_FOUND": 3,
    "MODEL_NOT_FOUND": 3,
    "DOWNLOAD_NOT_FOUND": 3,
    "CHECK_NOT_FOUND": 3,
    "REPAIR_NOT_FOUND": 3,
    "CLEANUP_NOT_FOUND": 3,
    "QUEUE_ENTRY_NOT_FOUND": 3,
    "ROUTE_NOT_FOUND": 3,
    "KEY_NOT_FOUND": 3,
    # 409: a state that refuses the action now
    "CONFLICT": 10,
    "DOWNLOAD_IN_PROGRESS": 10,
    "FEATURE_DISABLED": 10,
    "QUEUE_ENTRY_NOT_READY": 10,
    "REVISION_UNAVAILABLE": 10,
    "MODEL_NOT_INSTALLED": 10,
    "KEY_EXISTS": 10,
    "ILLEGAL_TRANSITION": 10,
    # 422
    "VALIDATION_ERROR": 2,
    "INVALID_MODEL_ID": 2,
    "INVALID_CHECK_ID": 2,
    "INVALID_REPAIR_ID": 2,
    "UNSAFE_PATH": 2,
    "UNSAFE_SOURCE": 1,
    "INTEGRITY_ERROR": 1,
    "CHECKSUM_MISMATCH": 1,
    # configuration
    "CONFIG_ERROR": 4,
    "CATALOG_ERROR": 4,
    "ALREADY_RUNNING": 7,
    # storage
    "STORAGE_ERROR": 5,
    "INSUFFICIENT_STORAGE": 5,
    "DISK_FULL": 5,
    "STORAGE_READ_ONLY": 5,
    # the hub
    "UPSTREAM_ERROR": 6,
    "UPSTREAM_UNAVAILABLE": 6,
    "UPSTREAM_TIMEOUT": 6,
    "UPSTREAM_NOT_FOUND": 6,
    "UPSTREAM_UNAUTHORIZED": 6,
    "UPSTREAM_RATE_LIMITED": 6,
    "UPSTREAM_PROTOCOL_ERROR": 6,
    "REDIRECT_ERROR": 6,
    "TRANSFER_INTERRUPTED": 6,
    # the service and the key
    "SERVICE_UNREACHABLE": 8,
    "UNAUTHORIZED": 9,
    "FORBIDDEN": 9,
    # the SDK's own (modeldepot.client.errors)
    "SERVICE_ERROR": 1,
    "RATE_LIMITED": 1,
    "UNEXPECTED_RESPONSE": 1,
    "WAIT_TIMEOUT": 1,
}


def error_classes() -> list[type[DepotError]]:
    """Every error class of modeldepot (not the SDK's per-answer ones, not tests')."""
    found: list[type[DepotError]] = []
    pending: list[type[DepotError]] = [DepotError]
    while pending:
        kind = pending.pop()
        synthetic = vars(kind).get("_synthetic", False)
        if kind.__module__.startswith("modeldepot.") and not synthetic:
            found.append(kind)
        pending.extend(kind.__subclasses__())
    return found


def test_every_error_class_has_its_pinned_exit_code() -> None:
    actual = {kind.code: Problem(kind.code, "").exit_code for kind in error_classes()}

    assert actual == EXPECTED


def test_the_table_itself_is_unchanged() -> None:
    table = [(base.__name__, code) for base, code in EXIT_CODES]

    assert table == [
        ("InvalidInput", 2),
        ("NotFound", 3),
        ("AlreadyRunning", 7),
        ("ConfigError", 4),
        ("StorageError", 5),
        ("UpstreamError", 6),
        ("ServiceUnreachable", 8),
        ("Unauthorized", 9),
        ("Forbidden", 9),
        ("Conflict", 10),
        ("DepotError", 1),
    ]


def test_a_code_no_class_has_exits_1() -> None:
    assert Problem("SOMETHING_NEW", "a newer service's error").exit_code == 1
    assert Problem("MODEL_NOT_FOUND", "").exit_code == 3

"""Validated identifiers: model ids, hub repo ids, revisions, digests and relative file paths,
and the ids of health checks and repairs.

Everything that later becomes part of a filesystem path passes through here first, so a
hostile value is refused before any path is built (RELIABILITY.md items 1-3: ``../`` ids,
absolute or UNC ``rfilename`` values, digests that are not exactly hex).

The ``*_PATTERN`` constants are also what the OpenAPI document publishes for these ids, so
a client (or a fuzzer, RELIABILITY.md 39) knows the rule before it is refused by it. They
are matched whole (``fullmatch``), as JSON Schema's ``$`` means: no trailing newline.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator, Field

from modeldepot.errors import InvalidCheckId, InvalidModelId, InvalidRepairId, UnsafePath

MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_MODEL_ID_RE = re.compile(MODEL_ID_PATTERN)
CHECK_ID_PATTERN = r"^check_[0-9a-f]{16}$"
_CHECK_ID_RE = re.compile(CHECK_ID_PATTERN)
REPAIR_ID_PATTERN = r"^repair_[0-9a-f]{16}$"
_REPAIR_ID_RE = re.compile(REPAIR_ID_PATTERN)
# The hub's own rule: one or two segments of [\w.-], no "--" and no ".." (huggingface_hub's
# validate_repo_id); we are stricter on characters so a repo id is always a safe path part.
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COMMIT_PATTERN = r"^[0-9a-f]{40}$"
"""A hub commit: 40 lowercase hex digits (a git sha1)."""
_GIT_SHA1_RE = re.compile(COMMIT_PATTERN)
DIGEST_ALGORITHMS = ("sha256", "gitsha1")


def validate_model_id(value: str) -> str:
    """Return ``value`` if it is a valid model id.

    Raises:
        InvalidModelId: the id breaks ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``.
    """
    if not isinstance(value, str) or _MODEL_ID_RE.fullmatch(value) is None:
        raise InvalidModelId(
            "Model ids are 1-128 characters of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
            details={"model_id": value if isinstance(value, str) else repr(value)},
        )
    return value


def _model_id_for_pydantic(value: str) -> str:
    try:
        return validate_model_id(value)
    except InvalidModelId as exc:
        raise ValueError(exc.message) from exc


ModelId = Annotated[
    str,
    AfterValidator(_model_id_for_pydantic),
    # Published, not enforced by pydantic: the validator above refuses with our message.
    Field(json_schema_extra={"pattern": MODEL_ID_PATTERN}),
]
"""A model id in a request or response body; its JSON schema carries the id rule."""


def validate_check_id(value: str) -> str:
    """Return ``value`` if it is a health check id (``check_`` and 16 hex digits).

    Raises:
        InvalidCheckId: anything else (never used in a query then).
    """
    if _CHECK_ID_RE.fullmatch(value) is None:
        raise InvalidCheckId(
            "Check ids look like check_ followed by 16 hex digits", details={"check_id": value}
        )
    return value


def validate_repair_id(value: str) -> str:
    """Return ``value`` if it is a repair id (``repair_`` and 16 hex digits).

    Raises:
        InvalidRepairId: anything else (never used in a query then).
    """
    if _REPAIR_ID_RE.fullmatch(value) is None:
        raise InvalidRepairId(
            "A repair id is 'repair_' and 16 hex digits", details={"repair_id": value}
        )
    return value


def validate_repo_id(value: str) -> str:
    """Return a hub repo id (``org/name`` or ``name``) if every part is a safe name.

    Raises:
        UnsafePath: a part is empty, contains ``--`` or ``..``, or other characters.
    """
    parts = value.split("/")
    if len(parts) > 2 or not all(_REPO_PART_RE.fullmatch(p) for p in parts):
        raise UnsafePath(f"'{value}' is not a valid hub repository id", details={"repo": value})
    if any("--" in p or ".." in p or p.endswith(".") for p in parts):
        raise UnsafePath(f"'{value}' is not a valid hub repository id", details={"repo": value})
    return value


def validate_revision(value: str) -> str:
    """Return a branch, tag or commit name that is safe as a ``refs/`` path.

    Raises:
        UnsafePath: the revision contains ``..``, starts with ``/`` or has other characters.
    """
    if _REVISION_RE.fullmatch(value) is None or ".." in value or "//" in value:
        raise UnsafePath(f"'{value}' is not a valid revision", details={"revision": value})
    return value


def is_commit_hash(value: str) -> bool:
    return _GIT_SHA1_RE.fullmatch(value) is not None


def validate_relative_path(value: str) -> str:
    """Return a repository-relative POSIX file path that cannot escape its root.

    Raises:
        UnsafePath: the path is empty, absolute, a Windows/UNC path, has a NUL, a
            backslash, a drive letter, or a ``.``/``..`` component.
    """
    bad = (
        not value
        or "\x00" in value
        or "\\" in value
        or value.startswith("/")
        or (len(value) > 1 and value[1] == ":")
        or len(value) > 1024
    )
    parts = value.split("/")
    if bad or any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"Unsafe file path '{value}'", details={"path": value})
    return value


def parse_digest(value: str) -> tuple[str, str]:
    """Split an ``algorithm:hex`` digest and check the hex is exactly right for it.

    Raises:
        UnsafePath: unknown algorithm or hex of the wrong length or alphabet (never used
            to build a path).
    """
    algorithm, _, hexdigest = value.partition(":")
    pattern = {"sha256": _SHA256_RE, "gitsha1": _GIT_SHA1_RE}.get(algorithm)
    if pattern is None or pattern.fullmatch(hexdigest) is None:
        raise UnsafePath(f"Malformed digest '{value}'", details={"digest": value})
    return algorithm, hexdigest


def make_digest(algorithm: str, hexdigest: str) -> str:
    """Build a checked ``algorithm:hex`` digest from its parts.

    Raises:
        UnsafePath: see :func:`parse_digest`.
    """
    digest = f"{algorithm}:{hexdigest.lower()}"
    parse_digest(digest)
    return digest


URL_NAMESPACE = "modeldepot-url"
"""The pseudo organisation under which single-file URL models live in the hub cache."""


def url_repo_id(model_id: str) -> str:
    """The pseudo repository id under which a single-file URL model is stored."""
    return f"{URL_NAMESPACE}/{validate_model_id(model_id)}"


def url_commit(url: str, sha256: str | None) -> str:
    """A stable 40-hex "commit" for a URL model: changes when the URL or its pin changes."""
    return hashlib.sha1(f"{url}\n{sha256 or ''}".encode(), usedforsecurity=False).hexdigest()

"""Manifests: the exact list of files a model revision must have, with size and digest.

A manifest comes from the hub (a commit's file list with LFS sha256 / git blob ids), from
the catalogue (a URL file pinned by sha256), or, when the hub has never been reached, from
what huggingface_hub already left in the cache (``source="cache"``: blobs there are named
by the digest the hub announced when they were downloaded). Digests carry their algorithm:
``sha256:<64 hex>`` or ``gitsha1:<40 hex>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from huggingface_hub.utils import filter_repo_objects

from modeldepot.ids import parse_digest, validate_relative_path

ManifestSource = Literal["hub", "url", "cache"]


@dataclass(frozen=True)
class ManifestFile:
    """One file of a revision. ``digest`` is None only for an unpinned URL file."""

    path: str
    size: int | None
    digest: str | None

    def __post_init__(self) -> None:
        validate_relative_path(self.path)
        if self.digest is not None:
            parse_digest(self.digest)
        if self.size is not None and self.size < 0:
            raise ValueError("file size cannot be negative")


@dataclass(frozen=True)
class Manifest:
    """The files of one model at one commit."""

    model_id: str
    source: ManifestSource
    repo_id: str
    revision: str
    commit: str
    files: tuple[ManifestFile, ...]
    resolved_at: datetime

    @property
    def total_size(self) -> int | None:
        """Sum of file sizes, or None while any size is unknown."""
        sizes = [f.size for f in self.files]
        if any(size is None for size in sizes):
            return None
        return sum(size for size in sizes if size is not None)


def select_files(
    files: Iterable[ManifestFile],
    *,
    allow_patterns: list[str] | None,
    ignore_patterns: list[str] | None,
) -> tuple[ManifestFile, ...]:
    """Keep the files the catalogue entry asks for, matched as huggingface_hub matches them."""
    kept = filter_repo_objects(
        files,
        allow_patterns=allow_patterns,
        ignore_patterns=ignore_patterns,
        key=lambda f: f.path,
    )
    return tuple(sorted(kept, key=lambda f: f.path))

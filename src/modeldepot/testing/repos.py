"""Repositories, branches and commits of the local hub, with real git object ids.

A repository is a set of immutable commits (full file snapshots) plus mutable branch
pointers and access settings. Commit, tree and blob ids are computed exactly as git
computes them, so a commit sha is 40 hex characters, changes whenever content or history
changes, and older commits stay resolvable after new ones are added (updates, rollback).

Which files are LFS-tracked is decided per file by an `LfsRule` when it is committed:
by default files over 10 KiB or with a weights extension, like the hub's default
``.gitattributes``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from modeldepot.testing.blobs import BlobStore, Content, lfs_pointer

LfsRule = Callable[[str, int], bool]
"""Decides from (path in repo, size in bytes) whether a file is stored with git-lfs."""

GatedMode = Literal["auto", "manual"]
FileSource = bytes | Path
"""Content of a file to commit: bytes, or an existing file copied in chunks."""

DEFAULT_LFS_THRESHOLD = 10 * 1024
DEFAULT_LFS_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.gguf",
)
DEFAULT_TOKEN = "hf_localhub_default_token"  # noqa: S105 - a public test token
"""Token that unlocks private and gated repos created without an explicit token list."""

_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_AUTHOR = "modeldepot-localhub <localhub@example.invalid>"
# Commits get deterministic, strictly increasing timestamps so that two commits with the
# same tree and parent still get different ids, and test runs are reproducible.
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def make_lfs_rule(
    *, threshold: int = DEFAULT_LFS_THRESHOLD, patterns: Iterable[str] = DEFAULT_LFS_PATTERNS
) -> LfsRule:
    """Build an `LfsRule`: LFS when ``size > threshold`` or the path matches a glob pattern."""
    globs = tuple(patterns)

    def rule(path: str, size: int) -> bool:
        name = PurePosixPath(path).name
        return size > threshold or any(fnmatch.fnmatchcase(name, glob) for glob in globs)

    return rule


default_lfs_rule: LfsRule = make_lfs_rule()


@dataclass(frozen=True, slots=True)
class RepoFile:
    """One file at one commit: its content hashes and how git stores it."""

    path: str
    content: Content
    lfs: bool
    disk_path: Path

    @property
    def size(self) -> int:
        return self.content.size

    @property
    def sha256(self) -> str:
        return self.content.sha256

    @property
    def pointer(self) -> bytes:
        return lfs_pointer(self.content.sha256, self.content.size)

    @property
    def blob_id(self) -> str:
        """The git blob id in the tree: of the content, or of the LFS pointer."""
        if not self.lfs:
            return self.content.git_sha1
        pointer = self.pointer
        return hashlib.sha1(
            b"blob %d\0" % len(pointer) + pointer, usedforsecurity=False
        ).hexdigest()

    @property
    def etag(self) -> str:
        """The hub's ETag for /resolve: the sha256 for LFS files, the git blob id otherwise."""
        return self.content.sha256 if self.lfs else self.content.git_sha1


@dataclass(frozen=True, slots=True)
class Commit:
    """An immutable snapshot of every file in a repo, with git ids for it and its folders."""

    sha: str
    parent: str | None
    title: str
    date: datetime
    files: Mapping[str, RepoFile]
    tree_ids: Mapping[str, str]
    """Git tree id of the root (``""``) and of every folder path."""

    def folders(self) -> list[str]:
        return sorted(path for path in self.tree_ids if path)


@dataclass
class Repository:
    """A model repository: commits, branches and who may read it.

    `private`, `gated`, `disabled` and `tokens` may be changed by tests at any time.
    """

    repo_id: str
    private: bool = False
    gated: GatedMode | Literal[False] = False
    disabled: bool = False
    tokens: frozenset[str] = frozenset({DEFAULT_TOKEN})
    extra_info: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = _EPOCH
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """Return the commit a branch name, ``refs/heads/<branch>`` or full sha designates."""
        branch = revision.removeprefix("refs/heads/")
        if branch in self.branches:
            return self.commits[self.branches[branch]]
        if _COMMIT_RE.fullmatch(revision):
            return self.commits.get(revision)
        return None

    def history(self, sha: str) -> Iterator[Commit]:
        """Yield the commit `sha` and its ancestors, newest first."""
        current: str | None = sha
        while current is not None:
            commit = self.commits[current]
            yield commit
            current = commit.parent

    def last_commit_touching(self, commit: Commit, path: str) -> Commit:
        """Return the newest ancestor of `commit` that changed `path` (file or folder)."""
        newest = commit
        for older in self.history(commit.sha):
            if _object_id(older, path) != _object_id(commit, path):
                break
            newest = older
        return newest

    @property
    def head(self) -> Commit:
        return self.commits[self.branches["main"]]


def _object_id(commit: Commit, path: str) -> str | None:
    entry = commit.files.get(path)
    if entry is not None:
        return entry.blob_id
    return commit.tree_ids.get(path)


class RepoNotFoundError(KeyError):
    """Raised by `RepoRegistry` for an unknown repo id."""


class RepoRegistry:
    """All repositories of one local hub; writes are serialised, reads are lock-free."""

    def __init__(self, store: BlobStore, *, lfs_rule: LfsRule = default_lfs_rule) -> None:
        self.store = store
        self.lfs_rule = lfs_rule
        self._repos: dict[str, Repository] = {}
        self._lock = threading.Lock()
        self._clock = 0

    def get(self, repo_id: str) -> Repository | None:
        return self._repos.get(repo_id)

    def __getitem__(self, repo_id: str) -> Repository:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise RepoNotFoundError(repo_id)
        return repo

    def __contains__(self, repo_id: object) -> bool:
        return repo_id in self._repos

    def ids(self) -> list[str]:
        return sorted(self._repos)

    def create(
        self,
        repo_id: str,
        files: Mapping[str, FileSource],
        *,
        private: bool = False,
        gated: bool | GatedMode = False,
        tokens: Collection[str] | None = None,
        message: str = "Initial commit",
        extra_info: Mapping[str, Any] | None = None,
        unsafe_paths: bool = False,
    ) -> str:
        """Create `repo_id` with one commit on ``main``; return the commit sha.

        `unsafe_paths=True` accepts hostile file names (``../x``, ``/etc/x``, ``C:\\x``) so
        tests can serve a malicious file list.

        Raises:
            ValueError: the repo exists, or the id or a path is invalid.
        """
        _validate_repo_id(repo_id)
        entries = self._ingest(files, unsafe_paths=unsafe_paths)
        with self._lock:
            if repo_id in self._repos:
                raise ValueError(f"repo {repo_id!r} already exists")
            repo = Repository(
                repo_id=repo_id,
                private=private,
                gated="auto" if gated is True else gated,
                tokens=frozenset({DEFAULT_TOKEN} if tokens is None else tokens),
                extra_info=dict(extra_info or {}),
                created_at=self._tick(),
            )
            commit = self._new_commit(parent=None, files=entries, title=message)
            repo.commits[commit.sha] = commit
            repo.branches["main"] = commit.sha
            self._repos[repo_id] = repo
        return commit.sha

    def commit(
        self,
        repo_id: str,
        *,
        add: Mapping[str, FileSource] | None = None,
        delete: Iterable[str] = (),
        branch: str = "main",
        message: str = "Update files",
        parent: str | None = None,
        unsafe_paths: bool = False,
    ) -> str:
        """Add a commit on `branch` (created from `parent` or main if new); return its sha.

        Raises:
            RepoNotFoundError: unknown repo.
            ValueError: a deleted path does not exist, or `parent` is unknown.
        """
        entries = self._ingest(add or {}, unsafe_paths=unsafe_paths)
        with self._lock:
            repo = self[repo_id]
            base_sha = parent or repo.branches.get(branch) or repo.branches["main"]
            if base_sha not in repo.commits:
                raise ValueError(f"unknown parent commit {base_sha!r}")
            files = dict(repo.commits[base_sha].files)
            for path in delete:
                if files.pop(path, None) is None:
                    raise ValueError(f"cannot delete {path!r}: not in {repo_id}@{base_sha}")
            files.update(entries)
            commit = self._new_commit(parent=base_sha, files=files, title=message)
            repo.commits[commit.sha] = commit
            repo.branches[branch] = commit.sha
        return commit.sha

    def set_branch(self, repo_id: str, branch: str, sha: str) -> None:
        """Point `branch` at an existing commit (a force-push, e.g. to roll back).

        Raises:
            RepoNotFoundError: unknown repo.
            ValueError: unknown commit.
        """
        with self._lock:
            repo = self[repo_id]
            if sha not in repo.commits:
                raise ValueError(f"unknown commit {sha!r}")
            repo.branches[branch] = sha

    def _ingest(
        self, files: Mapping[str, FileSource], *, unsafe_paths: bool
    ) -> dict[str, RepoFile]:
        entries: dict[str, RepoFile] = {}
        for path, source in files.items():
            if not unsafe_paths:
                _validate_path(path)
            size = len(source) if isinstance(source, bytes) else source.stat().st_size
            lfs = self.lfs_rule(path, size)
            if isinstance(source, bytes):
                content = self.store.put_bytes(source, lfs=lfs)
            else:
                content = self.store.put_path(source, lfs=lfs)
            disk_path = self.store.ensure_layout(content, lfs=lfs)
            entries[path] = RepoFile(path=path, content=content, lfs=lfs, disk_path=disk_path)
        return entries

    def _tick(self) -> datetime:
        self._clock += 1
        return _EPOCH + timedelta(minutes=self._clock)

    def _new_commit(self, *, parent: str | None, files: dict[str, RepoFile], title: str) -> Commit:
        tree_ids = _tree_ids(files)
        date = self._tick()
        stamp = int(date.timestamp())
        lines = [f"tree {tree_ids['']}"]
        if parent is not None:
            lines.append(f"parent {parent}")
        lines += [f"author {_AUTHOR} {stamp} +0000", f"committer {_AUTHOR} {stamp} +0000"]
        body = ("\n".join(lines) + f"\n\n{title}\n").encode()
        sha = hashlib.sha1(b"commit %d\0" % len(body) + body, usedforsecurity=False).hexdigest()
        return Commit(
            sha=sha, parent=parent, title=title, date=date, files=files, tree_ids=tree_ids
        )


def _tree_ids(files: Mapping[str, RepoFile]) -> dict[str, str]:
    """Compute git tree ids for the root and every folder, as `git write-tree` would."""
    children: dict[str, dict[str, tuple[str, str]]] = {"": {}}
    for path, entry in files.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            children.setdefault(folder, {})
        parent = "/".join(parts[:-1])
        children[parent][parts[-1]] = ("100644", entry.blob_id)
    ids: dict[str, str] = {}
    # Deepest folders first, so a folder's id is known before its parent's tree is built.
    for folder in sorted(children, key=lambda f: -f.count("/") - (1 if f else 0)):
        entries = dict(children[folder])
        for sub, sub_id in ids.items():
            if sub and "/".join(sub.split("/")[:-1]) == folder:
                entries[sub.split("/")[-1]] = ("40000", sub_id)
        # git sorts tree entries by name, comparing folders as if they ended with "/".
        order = sorted(
            entries, key=lambda name: name + "/" if entries[name][0] == "40000" else name
        )
        raw = b"".join(
            f"{entries[name][0]} {name}".encode() + b"\0" + bytes.fromhex(entries[name][1])
            for name in order
        )
        ids[folder] = hashlib.sha1(b"tree %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()
    return ids


_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def _validate_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) > 2 or not all(_REPO_PART.fullmatch(p) for p in parts) or ".." in repo_id:
        raise ValueError(f"invalid repo id {repo_id!r}")


def _validate_path(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid path in repo {path!r}")

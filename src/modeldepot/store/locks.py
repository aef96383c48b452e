"""Per-repository locks for the moments when files of a repository are linked or removed.

A blob may be shared by several snapshots of one repository. Whoever decides "this blob is
present, link it" (a download, a repair) and whoever decides "no snapshot uses this blob,
remove it" (the revision sweep) hold the repository's lock while deciding and acting, so a
blob is never removed between being judged present and being linked. The one set of locks
belongs to :class:`~modeldepot.store.cache.HubCache` (``cache.lock(repo_id)``).
"""

from __future__ import annotations

import asyncio


class RepoLocks:
    """One ``asyncio.Lock`` per repository id, created on first use (event loop only)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, repo_id: str) -> asyncio.Lock:
        lock = self._locks.get(repo_id)
        if lock is None:
            lock = self._locks[repo_id] = asyncio.Lock()
        return lock

"""Start-up recovery: after a clean stop or a kill -9, the database and the disk agree again.

* The newest job of every model is loaded; jobs that were queued stay queued, paused ones
  stay paused, and the ones that were transferring or verifying are queued again: they
  resume from their checkpoints (RELIABILITY.md 23, 24).
* In every repository of the catalogue, temp files of interrupted atomic writes are
  removed, and partial files that no unfinished job will resume, or whose blob was
  promoted meanwhile, are removed too (item 31): ``HubCache.collect_orphans_blocking``,
  told what :func:`resuming_repos` says the unfinished jobs still need. Repositories
  that are not in the catalogue are never touched.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.downloads import repo
from modeldepot.downloads.jobs import Job
from modeldepot.downloads.ledger import Ledger
from modeldepot.downloads.state import DownloadStatus

S = DownloadStatus


async def recover(*, ledger: Ledger, sessions: async_sessionmaker[AsyncSession]) -> list[Job]:
    """Load jobs into the ledger; requeue interrupted ones; return the unfinished jobs."""
    async with sessions() as session:
        ledger.seq = await repo.max_seq(session)
        for row in await repo.latest_per_model(session):
            ledger.remember(Job.from_row(row))
        unfinished = [Job.from_row(row) for row in await repo.unfinished(session)]
    kept: dict[str, Job] = {}
    for job in unfinished:  # ordered by seq: the newest of a model wins
        kept[job.model_id] = job
    for job in kept.values():
        ledger.remember(job)
        if job.status in (S.DOWNLOADING, S.VERIFYING):
            async with ledger.desk(job.model_id):
                await ledger.move(job, S.QUEUED)  # interrupted: resume from checkpoints
    return list(kept.values())


def resuming_repos(jobs: list[Job]) -> dict[str, set[str]]:
    """Repository id -> hex digests that will be fetched again although a blob exists."""
    repos: dict[str, set[str]] = {}
    for job in jobs:
        refetch = repos.setdefault(job.repo_id, set())
        refetch.update(digest.partition(":")[2] for digest in job.refetch)
    return repos

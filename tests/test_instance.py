"""One process per data directory, models directory and database (RELIABILITY.md 41).

A second service graph (in this process or another) on the same data is refused with a
message naming the holder, by the lock files or by the database lease; where flock lies
(network file systems), a fresh record of another holder refuses all the same; an
abandoned holder (stale heartbeat, expired lease, or a dead process on this host) is taken
over at once, so a restart right after kill -9 starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import scan_cache_dir
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.db import open_database
from modeldepot.errors import AlreadyRunning
from modeldepot.instance import (
    LEASE_NAME,
    Holder,
    InstanceLeaseRow,
    take_lease,
)
from modeldepot.services import open_services
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub
from tests.cli.test_cli import free_port
from tests.downloads.crash_support import (
    HubModel,
    ServiceProcess,
    remount_read_only,
    running_service,
    tmpfs,
)
from tests.support import SettingsFactory

HOST = socket.gethostname()


def data_lock(settings: Settings) -> Path:
    return settings.data_dir / "modeldepot.lock"


def models_lock(settings: Settings) -> Path:
    return settings.models_dir / ".locks" / "modeldepot.lock"


async def refusal(settings: Settings) -> AlreadyRunning:
    with pytest.raises(AlreadyRunning) as refused:
        async with open_services(settings, include_builtin=False, background=False):
            pass
    return refused.value


async def opens(settings: Settings) -> None:
    async with open_services(settings, include_builtin=False, background=False):
        pass


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process of ours that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(10)
    return process.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a live process on this host (not ours: another program)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(10)


def other_holder(*, hostname: str = "elsewhere.example", pid: int = 4242) -> Holder:
    return Holder(
        instance_id="0123456789abcdef",
        pid=pid,
        hostname=hostname,
        started_at=datetime(2026, 11, 29, 6, 0, tzinfo=UTC),
        data_dir="/srv/other/data",
        models_dir="/srv/other/models",
    )


def write_record(path: Path, holder: Holder, *, age_s: float = 0.0) -> None:
    """A lock file as another holder left it, with no flock held (what a lying network
    file system shows), its heartbeat ``age_s`` old."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**holder.to_json(), "ttl_seconds": 30}))
    then = time.time() - age_s
    os.utime(path, (then, then))


@asynccontextmanager
async def database_of(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with open_database(
        settings.resolved_database_url, schema=settings.database_schema
    ) as sessions:
        yield sessions


# --- a second service graph in this process -------------------------------------------------


async def test_second_open_of_the_same_settings_is_refused_naming_the_holder(
    database: dict[str, Any], make_settings: SettingsFactory
) -> None:
    settings = make_settings(**database)
    async with open_services(settings, include_builtin=False, background=False) as first:
        refused = await refusal(settings)
        record = json.loads(data_lock(settings).read_text())
        lease = first.instance
        cache_warnings = scan_cache_dir(settings.models_dir).warnings
    await opens(settings)  # released on exit: a restart in the same process opens

    assert refused.code == "ALREADY_RUNNING"
    assert f"pid {os.getpid()} on host '{HOST}'" in refused.message
    assert f"data dir {settings.data_dir}" in refused.message
    assert f"models dir {settings.models_dir}" in refused.message
    assert refused.details["holder"]["pid"] == os.getpid()
    assert record["pid"] == os.getpid()
    assert lease is not None
    assert record["instance_id"] == lease.holder.instance_id
    assert not lease.lost.is_set()
    assert cache_warnings == []  # .locks/ is the one folder scan_cache_dir skips
    assert data_lock(settings).read_text() == ""  # released: no record of a live pid left


async def test_different_databases_on_one_models_directory_are_refused_by_its_lock(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    first = make_settings(data_dir=tmp_path / "a")
    second = make_settings(data_dir=tmp_path / "b")
    async with open_services(first, include_builtin=False, background=False):
        refused = await refusal(second)

    assert f"the models directory {first.models_dir}" in refused.message
    assert f"pid {os.getpid()}" in refused.message
    assert f"data dir {first.data_dir}" in refused.message


async def test_one_database_from_other_directories_is_refused_by_the_lease(
    database: dict[str, Any], make_settings: SettingsFactory, tmp_path: Path
) -> None:
    shared = database or {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"}
    first = make_settings(data_dir=tmp_path / "a", models_dir=tmp_path / "ma", **shared)
    second = make_settings(data_dir=tmp_path / "b", models_dir=tmp_path / "mb", **shared)
    async with open_services(first, include_builtin=False, background=False):
        refused = await refusal(second)
        left_behind = data_lock(second).read_text()
    await opens(second)

    assert "already uses this database" in refused.message
    assert f"pid {os.getpid()} on host '{HOST}'" in refused.message
    assert f"models dir {first.models_dir}" in refused.message
    assert left_behind == ""  # the refused one gave its lock files back


# --- where flock lies -----------------------------------------------------------------------


@pytest.mark.parametrize("lock", [data_lock, models_lock])
async def test_a_fresh_record_of_another_host_refuses_although_flock_is_granted(
    make_settings: SettingsFactory, lock: Any
) -> None:
    settings = make_settings()
    write_record(lock(settings), other_holder(), age_s=1)

    refused = await refusal(settings)

    assert "pid 4242 on host 'elsewhere.example'" in refused.message
    assert "granted a lock it holds" in refused.message
    assert json.loads(lock(settings).read_text())["pid"] == 4242  # not overwritten


@pytest.mark.parametrize("abandoned", ["stale heartbeat", "dead process on this host"])
async def test_an_abandoned_record_is_taken_over(
    make_settings: SettingsFactory, abandoned: str, dead_pid: int
) -> None:
    settings = make_settings()
    if abandoned == "stale heartbeat":
        holder, age_s = other_holder(), 120.0
    else:
        holder, age_s = other_holder(hostname=HOST, pid=dead_pid), 0.0
    write_record(data_lock(settings), holder, age_s=age_s)
    write_record(models_lock(settings), holder, age_s=age_s)

    async with open_services(settings, include_builtin=False, background=False):
        records = [json.loads(data_lock(settings).read_text())]
        records.append(json.loads(models_lock(settings).read_text()))

    assert [r["pid"] for r in records] == [os.getpid(), os.getpid()]


async def test_a_fresh_record_of_a_live_process_on_this_host_refuses(
    make_settings: SettingsFactory, live_pid: int
) -> None:
    settings = make_settings()
    write_record(data_lock(settings), other_holder(hostname=HOST, pid=live_pid))

    refused = await refusal(settings)

    assert f"pid {live_pid} on host '{HOST}'" in refused.message


async def test_a_live_lease_of_another_host_refuses_and_an_expired_one_is_taken(
    database: dict[str, Any], make_settings: SettingsFactory
) -> None:
    settings = make_settings(**database)
    await opens(settings)  # migrated
    async with database_of(settings) as sessions:
        await take_lease(sessions, holder=other_holder(), ttl=30)
    refused = await refusal(settings)
    async with database_of(settings) as sessions, sessions.begin() as session:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await session.execute(update(InstanceLeaseRow).values(expires_at=past))
    await opens(settings)

    assert "already uses this database" in refused.message
    assert "pid 4242 on host 'elsewhere.example'" in refused.message
    assert "data dir /srv/other/data, models dir /srv/other/models" in refused.message


async def test_a_live_lease_of_a_dead_process_on_this_host_is_taken_at_once(
    database: dict[str, Any], make_settings: SettingsFactory, dead_pid: int
) -> None:
    settings = make_settings(**database)
    await opens(settings)
    async with database_of(settings) as sessions:
        await take_lease(sessions, holder=other_holder(hostname=HOST, pid=dead_pid), ttl=3600)

    async with open_services(settings, include_builtin=False, background=False) as services:
        lease = services.instance
        async with services.sessions() as session:
            row = await session.get(InstanceLeaseRow, LEASE_NAME)

    assert lease is not None
    assert row is not None
    assert row.instance_id == lease.holder.instance_id
    assert row.pid == os.getpid()


async def test_concurrent_starters_cannot_both_take_the_lease(
    database: dict[str, Any], make_settings: SettingsFactory
) -> None:
    settings = make_settings(**database)
    await opens(settings)
    holders = [other_holder(), Holder.starting(settings, models_dir=settings.models_dir)]
    async with database_of(settings) as sessions:
        outcomes = await asyncio.gather(
            *(take_lease(sessions, holder=h, ttl=30) for h in holders), return_exceptions=True
        )

    assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyRunning", "InstanceLease"]


async def test_a_lease_taken_by_someone_else_is_reported_lost(
    database: dict[str, Any], make_settings: SettingsFactory
) -> None:
    settings = make_settings(**database)
    await opens(settings)
    async with database_of(settings) as sessions:
        lease = await take_lease(
            sessions, holder=Holder.starting(settings, models_dir=settings.models_dir), ttl=30
        )
        kept = await lease.renew()
        async with sessions.begin() as session:
            await session.execute(update(InstanceLeaseRow).values(instance_id="someone-else"))
        renewed = await lease.renew()

    assert kept is True
    assert renewed is False
    assert lease.lost.is_set()


def hold_flock(path: Path) -> subprocess.Popen[str]:
    """Another process holding ``path``'s flock through a read-only descriptor, once it
    has said so."""
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


async def test_a_read_only_models_directory_is_still_guarded_by_its_lock_file(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", size="1M") as disk:
        lock = models_lock(make_settings(models_dir=disk))
        write_record(lock, other_holder(), age_s=120)  # stale: the flock alone decides
        remount_read_only(disk)
        process = hold_flock(lock)
        try:
            refused = await refusal(make_settings(data_dir=tmp_path / "b", models_dir=disk))
        finally:
            process.kill()
            process.wait(10)
            assert process.stdout is not None
            process.stdout.close()
        await opens(make_settings(data_dir=tmp_path / "c", models_dir=disk))  # flock free

    assert f"the models directory {disk}" in refused.message
    assert "pid 4242 on host 'elsewhere.example'" in refused.message  # as the file says


# --- real processes -------------------------------------------------------------------------


def serve_once(service: ServiceProcess) -> subprocess.CompletedProcess[str]:
    """``modeldepot serve`` in the first one's environment, run until it exits."""
    command = [sys.executable, "-m", "modeldepot", "serve", "--port", str(free_port())]
    return subprocess.run(
        command, env=service.env(), capture_output=True, text=True, timeout=30, check=False
    )


def test_a_second_process_exits_naming_the_first_and_a_restart_after_kill_starts(
    database: dict[str, Any], local_hub: LocalHub, tmp_path: Path
) -> None:
    model = HubModel(model_id="x", repo_id="acme/x", commit="0" * 40, files={})
    env = {f"MODELDEPOT_{key.upper()}": value for key, value in database.items()}
    service = ServiceProcess(root=tmp_path / "svc", hub=local_hub, models=[model], extra_env=env)
    with running_service(service):
        service.start()
        assert service.process is not None
        first_pid = service.process.pid

        second = serve_once(service)

        service.kill()
        service.start()  # at once: the lock and the lease name a dead process
        assert service.process is not None
        restarted_pid = service.process.pid
        record = json.loads((service.data_dir / "modeldepot.lock").read_text())

    assert second.returncode == 7, second.stderr
    assert "error ALREADY_RUNNING" in second.stderr
    assert f"pid {first_pid} on host '{HOST}'" in second.stderr
    assert f"data dir {service.data_dir}" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout
    assert record["pid"] == restarted_pid

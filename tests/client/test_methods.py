"""Every API method of ``Client`` and ``AsyncClient`` against the real service under
uvicorn and the local hub: one scenario, run through each client, that calls every
operation and checks its typed answer."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldepot.analytics.performance import PerformanceResponse
from modeldepot.api.routes.access import KeyCreated
from modeldepot.availability.schemas import AvailabilityStatus, ModelStatus
from modeldepot.client import AsyncClient, Client
from modeldepot.client import operations as ops
from modeldepot.downloads.schemas import ManageRequest
from modeldepot.downloads.state import DownloadStatus
from modeldepot.errors import DownloadNotFound, InvalidInput
from modeldepot.fallback.queue_schemas import QueueStatus
from modeldepot.testing import LocalHub, Throttle
from tests.client.support import ENTRIES, make_repos
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory

Invoke = Callable[..., Awaitable[Any]]

OPERATIONS = sorted(
    name
    for name, function in vars(ops).items()
    if inspect.isfunction(function)
    and function.__module__ == ops.__name__
    and not name.startswith("_")
)


def test_both_clients_have_every_operation() -> None:
    assert len(OPERATIONS) == 45
    for name in OPERATIONS:
        assert getattr(Client, name).__doc__ == getattr(ops, name).__doc__
        assert getattr(AsyncClient, name).__doc__ == getattr(ops, name).__doc__


@pytest.fixture
def server(local_hub: LocalHub, make_settings: SettingsFactory) -> Iterator[LiveServer]:
    make_repos(local_hub)
    # "other" downloads slowly: its download is paused, resumed and cancelled meanwhile.
    local_hub.faults.add(Throttle(bytes_per_second=100_000), repo="acme/other", times=None)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    with live_server(settings, entries=ENTRIES) as running:
        running.call(lambda services: services.catalog.refresh_all(), timeout=20)
        yield running


def test_every_method_of_the_blocking_client(server: LiveServer, local_hub: LocalHub) -> None:
    with Client(server.base_url) as client:
        called = asyncio.run(scenario(blocking(client), server, local_hub))
    assert called == set(OPERATIONS)


async def test_every_method_of_the_async_client(server: LiveServer, local_hub: LocalHub) -> None:
    async with AsyncClient(f"{server.base_url}/api/v1") as client:
        called = await scenario(awaiting(client), server, local_hub)
    assert called == set(OPERATIONS)


def blocking(client: Client) -> tuple[Invoke, set[str]]:
    called: set[str] = set()

    async def invoke(name: str, *args: Any, **kwargs: Any) -> Any:
        called.add(name)
        return await asyncio.to_thread(getattr(client, name), *args, **kwargs)

    return invoke, called


def awaiting(client: AsyncClient) -> tuple[Invoke, set[str]]:
    called: set[str] = set()

    async def invoke(name: str, *args: Any, **kwargs: Any) -> Any:
        called.add(name)
        return await getattr(client, name)(*args, **kwargs)

    return invoke, called


async def settle(server: LiveServer) -> None:
    await server.acall(lambda services: services.downloads.run_until_idle())


async def scenario(client: tuple[Invoke, set[str]], server: LiveServer, hub: LocalHub) -> set[str]:
    call, called = client
    await system_and_status(call)
    await downloads(call, server)
    await health_and_revisions(call, server, hub)
    await storage_and_cleanup(call)
    await usage(call)
    await fallback_and_queue(call)
    await config_keys_and_audit(call)
    return called


async def system_and_status(call: Invoke) -> None:
    healthz = await call("healthz")
    assert (healthz.status, healthz.catalog_models) == ("ok", 2)
    assert "# TYPE" in await call("metrics")
    page = await call("status", limit=1, sort="model_id", order="desc")
    assert list(page.models) == ["tiny"]
    assert (page.pagination.total, page.pagination.has_next) == (2, True)
    assert page.summary.total_models == 2
    tiny = await call("model_status", "tiny")
    assert isinstance(tiny, ModelStatus)
    assert tiny.availability_status is AvailabilityStatus.MISSING


async def downloads(call: Invoke, server: LiveServer) -> None:
    started = await call("download", "tiny", priority="high", max_retries=2)
    assert started.success
    assert started.download_id.startswith("dl_")
    await settle(server)
    done = await call("progress", "tiny")
    assert (done.status, done.max_retries) == (DownloadStatus.COMPLETED, 2)
    other = await call("manage", ManageRequest(model_id="other", action="start"))
    assert other.success
    paused = await call("pause", "other")
    assert paused.new_status == "PAUSED"
    assert (await call("resume", "other")).success
    await call("set_priority", "other", "low")
    updated = await call("update_download", "other", bandwidth_limit_mbps=0.5, max_retries=1)
    assert updated.success
    active = await call("active_downloads", sort="model_id")
    assert [a.model_id for a in active.active_downloads] == ["other"]
    assert active.active_downloads[0].priority == "low"
    assert (await call("progress", "other")).bandwidth_limit_mbps == 0.5
    assert (await call("cancel", "other")).success
    with pytest.raises(DownloadNotFound):
        await call("pause", "other")


async def health_and_revisions(call: Invoke, server: LiveServer, hub: LocalHub) -> None:
    overview = await call("health", limit=5)
    assert set(overview.models) == {"other", "tiny"}
    assert overview.pagination.total == 2
    assert set((await call("model_health", "tiny")).models) == {"tiny"}
    started = await call("check", "tiny", check_type="full", force=True)
    await server.acall(lambda services: services.health.run_until_idle())
    check = await call("get_check", started.check_id)
    assert (check.check_id, check.model_id, check.status) == (started.check_id, "tiny", "completed")
    repaired = await call("repair", "tiny", repair_type="integrity_fix")
    record = await call("get_repair", repaired.repair_id)
    assert (record.repair_id, record.model_id) == (repaired.repair_id, "tiny")
    v1 = (await call("model_status", "tiny")).current_version
    v2 = hub.commit("acme/tiny", add={"config.json": b'{"v": 2}'})
    listing = await call("revisions", "tiny", refresh=True)
    assert (listing.current_version, listing.latest_version) == (v1, v2)
    update = await call("update_model", "tiny", priority="high")
    assert (update.from_version, update.to_version) == (v1, v2)
    await settle(server)
    back = await call("rollback", "tiny")
    assert (back.from_version, back.to_version) == (v2, v1)


async def storage_and_cleanup(call: Invoke) -> None:
    storage = await call("storage", sort="size_gb", order="desc")
    assert [m.model_id for m in storage.models_storage][:1] == ["tiny"]
    pin = await call("pin", "tiny", reason="demo")
    assert (pin.model_id, pin.reason) == ("tiny", "demo")
    assert [p.model_id for p in (await call("pins")).pins] == ["tiny"]
    recommended = await call("cleanup_recommendations", min_unused_days=0)
    assert [p.model_id for p in recommended.protected] == ["tiny"]
    assert await call("unpin", "tiny") is None
    assert (await call("pins")).pins == []
    dry = await call("cleanup", "manual", models_to_remove=["tiny"], dry_run=True)
    assert (dry.dry_run, dry.models_removed) == (True, ["tiny"])
    assert (await call("get_cleanup", dry.cleanup_id)).cleanup_id == dry.cleanup_id
    with pytest.raises(InvalidInput) as refused:  # checked here, before sending
        await call("cleanup", "manual")
    assert refused.value.details["errors"][0]["field"] == "body"


async def usage(call: Invoke) -> None:
    event = {
        "event_id": "evt-1",
        "model_id": "tiny",
        "type": "generation_completed",
        "at": datetime.now(UTC).isoformat(),
        "duration_seconds": 3.5,
    }
    reported = await call("report_usage", [event])
    assert (reported.accepted, reported.duplicates) == (1, 0)
    assert (await call("report_usage", [event])).duplicates == 1
    week = await call("analytics", period="week")
    assert week.models["tiny"].total_uses == 1
    today = await call("model_analytics", "tiny", start_date=datetime.now(UTC).date())
    assert list(today.models) == ["tiny"]
    assert isinstance(await call("performance"), PerformanceResponse)


async def fallback_and_queue(call: Invoke) -> None:
    suggested = await call("suggest", "other", requirements={"quality": "high"})
    assert suggested.suggestions[0].suggested_model == "tiny"
    queued = await call("enqueue", "tiny", "a cat", parameters={"steps": 4}, priority="high")
    assert queued.status is QueueStatus.READY
    listed = await call("queue", model_id="tiny", status="READY")
    assert [e.queue_id for e in listed.data] == [queued.queue_id]
    assert (await call("queue_entry", queued.queue_id)).request.parameters == {"steps": 4}
    claimed = await call("claim", queued.queue_id, worker="gpu-1")
    assert claimed.status is QueueStatus.CLAIMED
    second = await call("enqueue", "tiny", "a dog")
    cancelled = await call("cancel_queue_entry", second.queue_id)
    assert cancelled.status is QueueStatus.CANCELLED


async def config_keys_and_audit(call: Invoke) -> None:
    before = await call("config")
    changed = await call("update_config", {"downloads": {"max_concurrent_downloads": 5}})
    assert changed.updated_settings == ["downloads.max_concurrent_downloads"]
    assert before.downloads.max_concurrent_downloads != 5
    assert (await call("config")).downloads.max_concurrent_downloads == 5
    created = await call("create_key", "ci", "read")
    assert isinstance(created, KeyCreated)
    assert created.key.startswith("mdk_")
    assert [k.name for k in (await call("keys")).data] == ["ci"]
    assert (await call("revoke_key", "ci")).revoked.name == "ci"
    audit = await call("audit", sort="at", order="desc", limit=100)
    assert {"POST /api/v1/auth/keys", "PUT /api/v1/config/update"} <= {
        entry.action for entry in audit.data
    }

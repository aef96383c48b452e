"""Every list endpoint pages (issue 10): ``page``, ``limit`` (max 100), ``sort``, ``order``
and the seed's ``pagination`` object beside the list, through the real app, a catalogue of
more than 20 models on the local hub, real hub-cache folders and real downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldepot.api.envelope import ErrorEnvelope
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.cli.remote import RemoteService
from modeldepot.revisions.models import RevisionRow
from modeldepot.testing import LocalHub
from modeldepot.testing.faults import Throttle
from tests.support import (
    RunningApp,
    SettingsFactory,
    fill_cache_with_huggingface_hub,
    hub_entry,
    run_app,
    until,
)

V = "/api/v1"
STATUS = f"{V}/models/status/detailed"
HEALTH = f"{V}/models/health"
STORAGE = f"{V}/models/storage"
ACTIVE = f"{V}/models/download/active"
MANAGE = f"{V}/models/download/manage"
BUILTIN = {"T2V-A14B", "I2V-A14B", "TI2V-5B"}
COUNT = 22  # more than one default page
IDS = [f"m{n:02d}" for n in range(COUNT)]


def publish(hub: LocalHub, *, big: bool = False) -> tuple[CatalogEntry, ...]:
    """``COUNT`` repos whose sizes do not follow their ids, each size twice (ties)."""
    entries = []
    for n, model_id in enumerate(IDS):
        size = 1000 + (n * 7 % (COUNT // 2)) * 100 + (200_000 if big else 0)
        hub.create_repo(f"acme/{model_id}", {"model.safetensors": bytes([n]) * size})
        entries.append(hub_entry(model_id, f"acme/{model_id}"))
    return tuple(entries)


def pagination(page: int, limit: int, total: int) -> dict[str, Any]:
    pages = -(-total // limit)
    return {
        "page": page,
        "limit": limit,
        "total": total,
        "pages": pages,
        "has_next": page < pages,
        "has_prev": page > 1,
    }


async def get(app: RunningApp, url: str, **params: Any) -> dict[str, Any]:
    response = await app.client.get(url, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def every_page(
    app: RunningApp, url: str, ids: Callable[[dict[str, Any]], list[str]], **params: Any
) -> list[str]:
    """The ids of every page in turn, at ``limit`` per page."""
    found: list[str] = []
    page = 1
    while True:
        body = await get(app, url, page=page, **params)
        found += ids(body)
        if not body["pagination"]["has_next"]:
            return found
        page += 1
        assert page <= 50, f"{url} never reached its last page"


async def assert_refuses_bad_paging(app: RunningApp, url: str) -> None:
    """Out-of-range or unknown paging parameters are 422 VALIDATION_ERROR, in the envelope,
    naming the parameter."""
    for name, value in [
        ("limit", 101),
        ("limit", 0),
        ("page", 0),
        ("page", 1_000_001),
        ("page", "two"),
        ("sort", "colour"),
        ("order", "sideways"),
    ]:
        response = await app.client.get(url, params={name: value})
        assert response.status_code == 422, (url, name, value, response.text)
        error = ErrorEnvelope.model_validate(response.json()).error
        assert error.code == "VALIDATION_ERROR"
        assert [e["field"] for e in error.details["errors"]] == [f"query.{name}"]


def models_of(body: dict[str, Any]) -> list[str]:
    return list(body["models"])


def nulls_last(values: list[Any]) -> list[Any]:
    return sorted(v for v in values if v is not None) + [v for v in values if v is None]


# --- GET /models/status/detailed ----------------------------------------------------------


async def test_status_listing_pages_sorts_and_keeps_the_summary_whole(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    entries = publish(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    for model_id in ("m05", "m13"):
        fill_cache_with_huggingface_hub(local_hub, f"acme/{model_id}", settings.models_dir)
    everything = sorted([*IDS, *BUILTIN])
    total = len(everything)
    async with run_app(settings, entries=entries) as app:
        first = await get(app, STATUS)
        second = await get(app, STATUS, page=2)
        beyond = await get(app, STATUS, page=3)
        whole = await get(app, STATUS, limit=100)
        backwards = await every_page(app, STATUS, models_of, order="desc", limit=7)
        by_size = await every_page(app, STATUS, models_of, sort="size_mb", limit=6)
        by_size_desc = await every_page(app, STATUS, models_of, sort="size_mb", order="desc")
        by_status = await get(app, STATUS, sort="availability_status", limit=100)
        await assert_refuses_bad_paging(app, STATUS)

    assert models_of(first) == everything[:20]
    assert first["pagination"] == pagination(1, 20, total)
    assert models_of(second) == everything[20:]
    assert second["pagination"] == pagination(2, 20, total)
    assert beyond["models"] == {}
    assert beyond["pagination"] == pagination(3, 20, total)
    assert models_of(whole) == everything
    for body in (first, second, beyond, whole):  # the summary counts every model
        assert body["summary"]["total_models"] == total
    assert backwards == everything[::-1]

    sizes = {m: s["size_mb"] for m, s in whole["models"].items()}
    assert {m for m, size in sizes.items() if size is None} == BUILTIN  # unresolvable
    assert [sizes[m] for m in by_size] == nulls_last(list(sizes.values()))
    assert len(set(by_size)) == total
    # Ties (each size twice, and the built-in models' unknown sizes) by id, ascending.
    assert by_size == sorted(everything, key=lambda m: (sizes[m] is None, sizes[m] or 0, m))
    assert by_size_desc == sorted(
        everything, key=lambda m: (sizes[m] is not None, -(sizes[m] or 0), m)
    )
    available = ["m05", "m13"]
    assert list(by_status["models"]) == available + [m for m in everything if m not in available]
    listed_statuses = [s["availability_status"] for s in by_status["models"].values()]
    assert listed_statuses == ["AVAILABLE"] * 2 + ["MISSING"] * (total - 2)
    assert whole["summary"]["available_models"] == 2


# --- GET /models/health, GET /models/storage ----------------------------------------------


async def test_health_and_storage_lists_page_and_sort(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    entries = publish(local_hub)
    local_hub.create_repo("acme/stray", {"config.json": b"{}"})
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    installed = IDS[:21]  # one catalogue model left out of the storage list
    for model_id in [*installed, "stray"]:
        folder = fill_cache_with_huggingface_hub(local_hub, f"acme/{model_id}", settings.models_dir)
        if model_id == "m20":  # on the second page: degraded, its only file gone
            (folder / "model.safetensors").unlink()
    everything = sorted([*IDS, *BUILTIN])
    async with run_app(settings, entries=entries) as app:
        health = await get(app, HEALTH)
        health_rest = await get(app, HEALTH, page=2)
        health_beyond = await get(app, HEALTH, page=4, limit=10)
        worst_first = await get(app, HEALTH, sort="overall_health", order="desc", limit=5)
        storage = await get(app, STORAGE)
        storage_rest = await get(app, STORAGE, page=2)
        storage_beyond = await get(app, STORAGE, page=2, limit=100)
        biggest = await every_page(
            app,
            STORAGE,
            lambda body: [m["model_id"] for m in body["models_storage"]],
            sort="size_gb",
            order="desc",
            limit=8,
        )
        sizes = {
            m["model_id"]: m["size_bytes"]
            for m in (await get(app, STORAGE, limit=100))["models_storage"]
        }
        for url in (HEALTH, STORAGE):
            await assert_refuses_bad_paging(app, url)

    assert list(health["models"]) == everything[:20]
    assert list(health_rest["models"]) == everything[20:]
    assert health["pagination"] == pagination(1, 20, len(everything))
    assert health_beyond["models"] == {}
    assert health_beyond["pagination"] == pagination(4, 10, len(everything))
    assert health_rest["models"]["m20"]["overall_health"] == "degraded"
    for body in (health, health_rest, health_beyond):  # the summary counts every model
        assert body["system_health"]["degraded_models"] == 1
    # Alphabetical, desc: "unknown" (installed, not yet checked) first; ties by id, asc.
    assert list(worst_first["models"]) == sorted(set(installed) - {"m20"})[:5]
    assert {m["overall_health"] for m in worst_first["models"].values()} == {"unknown"}

    listed = sorted(installed)
    assert [m["model_id"] for m in storage["models_storage"]] == listed[:20]
    assert [m["model_id"] for m in storage_rest["models_storage"]] == listed[20:]
    assert storage["pagination"] == pagination(1, 20, len(installed))
    assert storage_beyond["models_storage"] == []
    assert storage_beyond["pagination"] == pagination(2, 100, len(installed))
    for body in (storage, storage_rest, storage_beyond):  # whole on every page
        assert body["storage_summary"]["models_count"] == len(installed)
        assert [r["repo_id"] for r in body["unmanaged_repositories"]] == ["acme/stray"]
    assert biggest == sorted(installed, key=lambda m: (-sizes[m], m))


# --- GET /models/download/active ----------------------------------------------------------

PRIORITIES = ("critical", "high", "normal", "low")


async def test_active_downloads_page_in_run_order_and_sort(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    entries = publish(local_hub, big=True)
    # Held: two transfer a trickle, the rest wait in the queue for the whole test.
    local_hub.faults.add(Throttle(bytes_per_second=1000), server="cdn", times=None)
    settings = make_settings(
        hf_endpoint=local_hub.endpoint, downloads={"max_concurrent_downloads": 2}
    )
    async with run_app(settings, entries=entries) as app:
        for n, model_id in enumerate(IDS):
            body = {"model_id": model_id, "action": "start", "priority": PRIORITIES[n % 4]}
            assert (await app.client.post(MANAGE, json=body)).status_code == 200

        def running() -> int:
            jobs = app.services.downloads.active().active_downloads
            return sum(job.status == "DOWNLOADING" for job in jobs)

        await until(lambda: running() == 2, what="two downloads running")
        run_order = [d.model_id for d in app.services.downloads.active().active_downloads]
        first = await get(app, ACTIVE)
        second = await get(app, ACTIVE, page=2)
        beyond = await get(app, ACTIVE, page=3)
        backwards = await every_page(app, ACTIVE, downloads_of, order="desc", limit=9)
        by_priority = await get(app, ACTIVE, sort="priority", limit=100)
        by_id_desc = await get(app, ACTIVE, sort="model_id", order="desc", limit=5)
        await assert_refuses_bad_paging(app, ACTIVE)
        for model_id in IDS:
            await app.client.post(MANAGE, json={"model_id": model_id, "action": "cancel"})

    assert downloads_of(first) == run_order[:20]
    assert [d["status"] for d in first["active_downloads"]][:3] == [
        "DOWNLOADING",
        "DOWNLOADING",
        "QUEUED",
    ]
    assert downloads_of(second) == run_order[20:]
    assert first["pagination"] == pagination(1, 20, COUNT)
    assert second["pagination"] == pagination(2, 20, COUNT)
    assert beyond["active_downloads"] == []
    assert beyond["pagination"] == pagination(3, 20, COUNT)
    for body in (first, second, beyond):  # totals count every active download
        assert body["total_active"] == COUNT
    assert backwards == run_order[::-1]
    priority = {m: PRIORITIES[n % 4] for n, m in enumerate(IDS)}
    assert downloads_of(by_priority) == sorted(
        IDS, key=lambda m: (PRIORITIES.index(priority[m]), m)
    )
    assert downloads_of(by_id_desc) == sorted(IDS, reverse=True)[:5]


def downloads_of(body: dict[str, Any]) -> list[str]:
    return [d["model_id"] for d in body["active_downloads"]]


# --- GET /models/revisions/{model_id} -----------------------------------------------------


async def test_revisions_page_with_the_current_one_first(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    entries = publish(local_hub)
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    folder = fill_cache_with_huggingface_hub(local_hub, "acme/m00", settings.models_dir)
    current = folder.name
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    history = [f"{n:040x}" for n in range(COUNT)]  # commits installed and removed long ago
    url = f"{V}/models/revisions/m00"
    async with run_app(settings, entries=entries) as app:
        # A long history, as years of updates and sweeps leave it in the real table.
        async with app.services.sessions() as session, session.begin():
            for n, commit in enumerate(history):
                superseded = t0 + timedelta(days=n)
                row = RevisionRow(model_id="m00", commit_hash=commit, repo_id="acme/m00")
                row.revision, row.state = "main", "removed"
                row.installed_at, row.superseded_at = superseded - timedelta(hours=1), superseded
                row.removed_at, row.freed_bytes = superseded + timedelta(hours=1), 1000
                session.add(row)
        first = await get(app, url)
        second = await get(app, url, page=2)
        beyond = await get(app, url, page=3)
        oldest_first = await every_page(
            app, url, commits_of, sort="superseded_at", order="asc", limit=10
        )
        by_commit = await get(app, url, sort="commit", order="desc", limit=3)
        await assert_refuses_bad_paging(app, url)

    newest_first = history[::-1]
    assert commits_of(first) == [current, *newest_first[:19]]
    assert first["revisions"][0]["state"] == "current"
    assert commits_of(second) == newest_first[19:]
    assert beyond["revisions"] == []
    for page, body in enumerate((first, second, beyond), start=1):
        assert body["pagination"] == pagination(page, 20, COUNT + 1)
        assert body["current_version"] == current
    assert oldest_first == [*history, current]  # the current one was never superseded
    assert commits_of(by_commit) == sorted([current, *history], reverse=True)[:3]


def commits_of(body: dict[str, Any]) -> list[str]:
    return [r["commit"] for r in body["revisions"]]


# --- the published document ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "default", "fields"),
    [
        (STATUS, "model_id", {"availability_status", "size_mb", "last_used", "download_progress"}),
        (HEALTH, "model_id", {"overall_health", "integrity_score", "last_check"}),
        (STORAGE, "model_id", {"size_gb", "last_accessed", "usage_frequency"}),
        (ACTIVE, "queue", {"model_id", "priority", "status", "progress_percent"}),
        (f"{V}/models/revisions/{{model_id}}", "state", {"commit", "superseded_at"}),
    ],
)
async def test_openapi_documents_each_list_endpoints_paging(
    make_settings: SettingsFactory, path: str, default: str, fields: set[str]
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        document = await get(app, "/openapi.json")
    operation = document["paths"][path]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    assert parameters["sort"]["default"] == default
    assert {default} | fields <= set(parameters["sort"]["enum"])
    page = parameters["page"]
    assert (page["type"], page["minimum"], page["maximum"], page["default"]) == (
        "integer",
        1,
        1_000_000,
        1,
    )
    assert (parameters["limit"]["maximum"], parameters["limit"]["default"]) == (100, 20)
    assert parameters["order"]["$ref"] == "#/components/schemas/Order"
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    page_schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert page_schema["properties"]["pagination"] == {"$ref": "#/components/schemas/Pagination"}
    assert "pagination" in page_schema["required"]
    assert "422" in operation["responses"]


# --- consumers read every page ------------------------------------------------------------


async def test_the_cli_client_reads_every_page_of_the_status_listing(
    make_settings: SettingsFactory,
) -> None:
    many = [f"x{n:03d}" for n in range(230)]  # three pages of 100
    entries = tuple(hub_entry(m, f"acme/{m}") for m in many)
    async with run_app(make_settings(), entries=entries, resolve=False) as app:
        statuses = await RemoteService(app.client).detailed_status()
    assert [s.model_id for s in statuses] == sorted([*many, *BUILTIN])

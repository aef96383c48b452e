"""Helpers shared by tests: run the real app, build catalogue entries, fill a cache, and
wait for a state (never a fixed sleep: a test waits for what it means, bounded)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from huggingface_hub import snapshot_download

from modeldepot.api.app import create_app
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.services import Services
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub

SettingsFactory = Callable[..., Settings]
T = TypeVar("T")
WAIT_S = 10.0


@dataclass
class RunningApp:
    client: httpx.AsyncClient
    services: Services


@asynccontextmanager
async def run_app(
    settings: Settings, *, entries: tuple[CatalogEntry, ...] = (), resolve: bool = True
) -> AsyncIterator[RunningApp]:
    """The real app with its lifespan, spoken to over ASGI; background loops off."""
    app = create_app(settings, extra_entries=entries, background=False)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        if resolve:
            await services.catalog.refresh_all()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield RunningApp(client=client, services=services)


def hub_entry(model_id: str, repo_id: str, **extra: Any) -> CatalogEntry:
    return CatalogEntry.model_validate(
        {"id": model_id, "source": f"hf://{repo_id}", "model_type": "text-to-video", **extra}
    )


def fill_cache_with_huggingface_hub(hub: LocalHub, repo_id: str, models_dir: Path) -> Path:
    """Download a repo with huggingface_hub itself, as a user would have done before us."""
    return Path(snapshot_download(repo_id, cache_dir=models_dir, endpoint=hub.endpoint))


async def until(
    probe: Callable[[], T], *, within: float = WAIT_S, what: str = "the condition"
) -> T:
    """Poll ``probe`` until it returns something truthy and return that; fail after
    ``within`` seconds (a bound for a stuck test, never a measurement)."""
    deadline = time.monotonic() + within
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held within {within} s")
        await asyncio.sleep(0.01)
    return value


def until_blocking(
    probe: Callable[[], T], *, within: float = WAIT_S, what: str = "the condition"
) -> T:
    """`until` for a test without an event loop (it blocks the calling thread)."""
    deadline = time.monotonic() + within
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held within {within} s")
        time.sleep(0.01)
    return value


async def progress_until(
    app: RunningApp,
    predicate: Callable[[dict[str, Any]], bool],
    model_id: str = "tiny",
    *,
    within: float = WAIT_S,
) -> dict[str, Any]:
    """Poll a download's progress (as a client would) until ``predicate`` holds; return it."""
    deadline = time.monotonic() + within
    while True:
        response = await app.client.get(f"/api/v1/models/download/progress/{model_id}")
        body = dict(response.json())
        if predicate(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"progress of {model_id} never matched; last: {body}")
        await asyncio.sleep(0.02)

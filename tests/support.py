"""Helpers shared by tests: run the real app, build catalogue entries, fill a cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import snapshot_download

from modeldepot.api.app import create_app
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.services import Services
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub

SettingsFactory = Callable[..., Settings]


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
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield RunningApp(client=client, services=services)


def hub_entry(model_id: str, repo_id: str, **extra: Any) -> CatalogEntry:
    return CatalogEntry.model_validate(
        {"id": model_id, "source": f"hf://{repo_id}", "model_type": "text-to-video", **extra}
    )


def fill_cache_with_huggingface_hub(hub: LocalHub, repo_id: str, models_dir: Path) -> Path:
    """Download a repo with huggingface_hub itself, as a user would have done before us."""
    return Path(snapshot_download(repo_id, cache_dir=models_dir, endpoint=hub.endpoint))

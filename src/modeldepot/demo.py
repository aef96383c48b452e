"""``modeldepot serve --demo``: the real service against an in-process local hub.

Someone without network access (or without 60 GB to spare) can try every feature: a local
hub (``modeldepot.testing.LocalHub``, the same server our tests use) publishes a few small
diffusion-style repositories, and the catalogue holds exactly those models. Demo state
lives in ``<data_dir>/demo`` so it never mixes with real models.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.settings import Settings

_DEMO_ATTRIBUTES = {
    "tiny-t2v": {
        "model_type": "text-to-video",
        "capabilities": ["text-to-video"],
        "quality": "high",
        "speed": "low",
        "resolutions": ["1280x720", "832x480"],
        "min_vram_gb": 8,
        "parameters_b": 0.001,
    },
    "tiny-ti2v": {
        "model_type": "text-image-to-video",
        "capabilities": ["text-to-video", "image-to-video"],
        "quality": "medium",
        "speed": "medium",
        "resolutions": ["1280x704"],
        "min_vram_gb": 4,
        "parameters_b": 0.0005,
    },
    "tiny-i2v": {
        "model_type": "image-to-video",
        "capabilities": ["image-to-video"],
        "quality": "high",
        "speed": "low",
        "resolutions": ["1280x720", "832x480"],
        "min_vram_gb": 8,
        "parameters_b": 0.001,
    },
}


@dataclass(frozen=True)
class DemoEnvironment:
    settings: Settings
    entries: tuple[CatalogEntry, ...]
    hub_endpoint: str


def demo_data_dir(settings: Settings) -> Path:
    """Where the demo keeps its models, database (and API keys): never the real ones."""
    return settings.data_dir / "demo"


@contextmanager
def demo_environment(settings: Settings) -> Iterator[DemoEnvironment]:
    """Start a local hub with demo repositories; yield settings and catalogue that use it."""
    from modeldepot.testing import LocalHub, create_demo_repos

    with LocalHub() as hub:
        entries = []
        for repo_id in create_demo_repos(hub):
            name = repo_id.rsplit("/", 1)[1]
            entries.append(
                CatalogEntry.model_validate(
                    {
                        "id": name,
                        "source": f"hf://{repo_id}",
                        "display_name": f"Demo {name}",
                        "description": "Small generated demo model served by the local hub",
                        **_DEMO_ATTRIBUTES.get(name, {}),
                    }
                )
            )
        demo_dir = demo_data_dir(settings)
        demo_settings = settings.model_copy(
            update={
                "hf_endpoint": hub.endpoint,
                "hf_token": None,
                "offline": False,
                "data_dir": demo_dir,
                "models_dir": demo_dir / "models",
                "database_url": None,
                "catalog": None,
                "demo": True,
            }
        )
        yield DemoEnvironment(
            settings=demo_settings, entries=tuple(entries), hub_endpoint=hub.endpoint
        )

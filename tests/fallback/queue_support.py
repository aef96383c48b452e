"""What the wait-queue tests share: two catalogue models on the local hub and the calls."""

from __future__ import annotations

import os
from typing import Any

from modeldepot.testing import LocalHub
from tests.support import RunningApp, hub_entry

V = "/api/v1"
Q = f"{V}/models/fallback/queue"
ENTRIES = (
    hub_entry("wanted", "acme/wanted", capabilities=["text-to-video"]),
    hub_entry("other", "acme/other", capabilities=["text-to-video"]),
)


def make_repos(hub: LocalHub) -> LocalHub:
    """``wanted`` (2 MB, throttled by the tests that watch it download) and ``other``."""
    hub.create_repo("acme/wanted", {"model.ckpt": os.urandom(2_000_000)})
    hub.create_repo("acme/other", {"model.ckpt": os.urandom(200_000)})
    return hub


async def entry(app: RunningApp, queue_id: str) -> dict[str, Any]:
    answer = await app.client.get(f"{Q}/{queue_id}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def manage(app: RunningApp, action: str, model_id: str = "wanted") -> None:
    answer = await app.client.post(
        f"{V}/models/download/manage", json={"model_id": model_id, "action": action}
    )
    assert answer.status_code == 200, answer.text

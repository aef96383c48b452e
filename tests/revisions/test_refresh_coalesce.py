"""``?refresh=true`` asks the hub now, once: requests that arrive while a resolution of the
model runs share it (revisions and status alike), and one that arrives later asks again."""

from __future__ import annotations

import asyncio
from typing import Any

from modeldepot.testing import LocalHub, demo_repo_files
from tests.support import SettingsFactory, hub_entry, run_app

REPO = "acme/tiny"


def metadata_calls(hub: LocalHub) -> int:
    return len([r for r in hub.requests if r.path.startswith(f"/api/models/{REPO}")])


async def test_a_hundred_concurrent_refreshes_make_one_hub_call(
    local_hub: LocalHub, make_settings: SettingsFactory, database: dict[str, Any]
) -> None:
    first = local_hub.create_repo(REPO, demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint, **database)
    async with run_app(settings, entries=(hub_entry("tiny", REPO),)) as app:
        second = local_hub.commit(REPO, add={"config.json": b'{"v": 2}'})
        local_hub.requests.clear()

        # All 100 reach the shared resolution before the hub can answer its one request.
        answers = await asyncio.gather(
            *(app.services.revisions.revisions("tiny", refresh=True) for _ in range(100))
        )

        assert metadata_calls(local_hub) == 1
        assert {a.latest_version for a in answers} == {second}
        assert first != second

        # Over HTTP, one after the other: each asks the hub now (nothing stale is served).
        local_hub.requests.clear()
        for path in ("revisions/tiny", "status/detailed/tiny"):
            answer = await app.client.get(f"/api/v1/models/{path}", params={"refresh": "true"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["latest_version"] == second
        assert metadata_calls(local_hub) == 2

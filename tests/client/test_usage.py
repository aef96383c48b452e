"""``client.generation(...)`` reports through the usage reporter, with the client's URL
and API key, sync and asyncio."""

from __future__ import annotations

import pytest

from modeldepot.auth.keys import Role
from modeldepot.client import AsyncClient, Client
from modeldepot.testing import LocalHub
from tests.client.support import ENTRIES, make_repos
from tests.live_server import live_server
from tests.support import SettingsFactory


async def test_generations_are_reported_with_the_clients_url_and_key(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    settings = make_settings(hf_endpoint=make_repos(local_hub).endpoint, auth_required=True)
    with live_server(settings, entries=ENTRIES) as server:
        _, key = await server.acall(lambda services: services.keys.create("app", Role.user))
        with Client(f"{server.base_url}/api/v1", api_key=key, app_name="wan-ui") as client:
            with client.generation("tiny", steps=4, resolution="64x64"):
                pass
            with pytest.raises(RuntimeError), client.generation("tiny"):
                raise RuntimeError("out of memory")
            client.usage.loaded("tiny")
            delivered = client.usage.flush(timeout=10)
            loaded = client.model_status("tiny").is_loaded
        async with AsyncClient(server.base_url, api_key=key) as aclient:
            async with aclient.generation("other", frames=16):
                pass
            adelivered = await aclient.usage.flush(timeout=10)
            today = await aclient.analytics(period="day")
    assert (delivered, adelivered) == (True, True)
    assert loaded is True
    tiny, other = today.models["tiny"], today.models["other"]
    assert (tiny.total_uses, tiny.success_rate) == (2, 0.5)
    assert other.total_uses == 1

"""Every status the guards and access control document on an operation is one it really
answers: 401, 403 and 429 everywhere they are documented; 408, 413 and 415 on every
operation with a body. (tests/api/test_openapi.py covers the routes' own statuses.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from modeldepot.api.access import security_responses
from modeldepot.auth.keys import Role
from tests.security.test_auth import bearer, concrete, operations
from tests.support import SettingsFactory, run_app

BODY_METHODS = ("POST", "PUT", "PATCH")


async def never_finishes() -> AsyncIterator[bytes]:
    yield b"{"
    await asyncio.Event().wait()  # the rest never comes: the body time-out answers


async def test_each_guard_status_is_documented_where_it_is_answered(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(auth_required=True, request_body_timeout_seconds=0.2)
    answered: dict[tuple[str, str], set[int]] = {}
    async with run_app(settings, resolve=False) as app:
        _, admin = await app.services.keys.create("admin", Role.admin)
        _, reader = await app.services.keys.create("reader", Role.read)
        document = (await app.client.get("/openapi.json", headers=bearer(reader))).json()
        ops = operations(document)
        # First without rate limits (loopback is exempt by default): 401, 403, 408/413/415.
        for method, path in ops:
            answered[method, path] = await refusals(app.client, method, path, admin, reader)
        # Then with one request per minute per bucket and per key, loopback included: a
        # fresh key per operation passes once, and its second request is 429.
        await app.services.config.update(
            {
                "rate_limits": {
                    "exempt_loopback": False,
                    "default_per_minute": 1,
                    "downloads_per_minute": 1,
                    "admin_per_minute": 1,
                }
            }
        )
        for number, (method, path) in enumerate(ops):
            _, key = await app.services.keys.create(f"admin-{number}", Role.admin)
            options = request_options(method, bearer(key))
            first = await app.client.request(method, concrete(path), **options)
            again = await app.client.request(method, concrete(path), **options)
            answered[method, path] |= {first.status_code, again.status_code}
            if "429" in security_responses(method, path):
                assert again.status_code == 429, (method, path, again.text)
                assert int(again.headers["retry-after"]) >= 1
                assert again.json()["error"]["code"] == "RATE_LIMITED"
            else:
                assert 429 not in {first.status_code, again.status_code}
    mismatches = {}
    for (method, path), codes in answered.items():
        documented = {int(code) for code in security_responses(method, path)}
        if not documented <= codes:
            mismatches[method, path] = sorted(documented - codes)
    assert mismatches == {}


def request_options(method: str, headers: dict[str, str]) -> dict[str, Any]:
    if method in BODY_METHODS:
        return {"content": b"{}", "headers": {**headers, "content-type": "application/json"}}
    return {"headers": headers}


async def refusals(
    client: httpx.AsyncClient, method: str, path: str, admin: str, reader: str
) -> set[int]:
    """The statuses of requests each guard must refuse on this operation."""
    url = concrete(path)
    auth = bearer(admin)
    sent = [
        await client.request(method, url, **request_options(method, {})),
        await client.request(
            method, url, **request_options(method, {**auth, "host": "evil.example"})
        ),
        await client.request(method, url, **request_options(method, bearer(reader))),
    ]
    assert sent[0].status_code == 401, sent[0].text
    assert sent[1].json()["error"]["code"] == "HOST_NOT_ALLOWED"
    if method in BODY_METHODS:
        json_type = {**auth, "content-type": "application/json"}
        sent += [
            await client.request(
                method,
                url,
                content=b"a=b",
                headers={**auth, "content-type": "application/x-www-form-urlencoded"},
            ),
            await client.request(
                method, url, content=b"[" + b" " * 1_000_000 + b"]", headers=json_type
            ),
            await client.request(method, url, content=never_finishes(), headers=json_type),
        ]
        assert [r.status_code for r in sent[3:]] == [415, 413, 408]
    for response in sent:
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}
    return {response.status_code for response in sent}


async def test_the_document_declares_bearer_keys_as_optional(
    make_settings: SettingsFactory,
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        document = (await app.client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}, {}]
    limited = document["paths"]["/api/v1/models/status/detailed"]["get"]["responses"]["429"]
    assert set(limited["headers"]) == {
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    }
    assert "429" not in document["paths"]["/healthz"]["get"]["responses"]

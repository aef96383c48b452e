"""API keys with roles (RELIABILITY.md 32): every route and the WebSocket need a key when
keys are required; 401 without or with a wrong one, 403 when the role does not allow the
action; admin actions in the audit log; keys never logged; the CLI manages them."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from modeldepot.api.access import POLICIES, READ_METHODS
from modeldepot.auth.audit import AuditLog
from modeldepot.auth.keys import KeyStore, Role, validate_key_name
from modeldepot.cli.main import app as cli
from modeldepot.errors import ConfigError, InvalidInput
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub, demo_repo_files
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, hub_entry, run_app

V = "/api/v1"
ROLES = (Role.read, Role.user, Role.admin)


def concrete(path: str) -> str:
    """An OpenAPI path with its parameters filled in."""
    return (
        path.replace("{model_id}", "tiny")
        .replace("{check_id}", "check_0123456789abcdef")
        .replace("{repair_id}", "repair_0123456789abcdef")
        .replace("{name}", "nobody")
    )


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


def needed_role(method: str, path: str) -> Role:
    if (method, path) in POLICIES:
        return POLICIES[method, path].role
    assert method in READ_METHODS, f"{method} {path} has no policy"
    return Role.read


@pytest.fixture
def server(local_hub: LocalHub, make_settings: SettingsFactory) -> Iterator[LiveServer]:
    local_hub.create_repo("acme/tiny", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint, auth_required=True)
    with live_server(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as running:
        yield running


def make_keys(server: LiveServer) -> dict[Role, str]:
    async def create(services: Any) -> dict[Role, str]:
        return {role: (await services.keys.create(f"k-{role.value}", role))[1] for role in ROLES}

    return server.call(create)


def secret_of(key: str) -> str:
    """The secret part of ``mdk_<12 hex>_<secret>`` (which may itself hold '_')."""
    return key[len("mdk_") + 13 :]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def request(client: httpx.Client, method: str, path: str, key: str | None) -> httpx.Response:
    headers = bearer(key) if key is not None else {}
    if method in ("POST", "PUT", "PATCH"):
        return client.request(method, path, headers=headers, json={})
    return client.request(method, path, headers=headers)


def test_every_operation_needs_a_key_and_the_role_it_names(server: LiveServer) -> None:
    keys = make_keys(server)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        document = client.get("/openapi.json", headers=bearer(keys[Role.read])).json()
        ops = operations(document)
        assert len(ops) >= 18
        for method, path in ops:
            url = concrete(path)
            for key in (None, "mdk_0123456789ab_" + "A" * 43, "not-a-key", keys[Role.read] + "x"):
                refused = request(client, method, url, key)
                assert refused.status_code == 401, (method, path, key, refused.text)
                assert refused.json()["error"]["code"] == "UNAUTHORIZED"
                assert refused.headers["www-authenticate"].startswith("Bearer")
            needed = needed_role(method, path)
            for role, key in keys.items():
                answer = request(client, method, url, key)
                if role.allows(needed):
                    assert answer.status_code not in (401, 403), (method, path, role, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, role, answer.text)
                    error = answer.json()["error"]
                    assert error["code"] == "FORBIDDEN"
                    assert needed.value in error["message"]


def test_the_role_decides_what_a_key_may_do(server: LiveServer) -> None:
    keys = make_keys(server)
    start = {"model_id": "tiny", "action": "start"}
    update = {"downloads": {"max_retries": 5}}
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        status = client.get(f"{V}/models/status/detailed", headers=bearer(keys[Role.read]))
        assert status.status_code == 200
        refused = client.post(
            f"{V}/models/download/manage", json=start, headers=bearer(keys[Role.read])
        )
        assert refused.status_code == 403
        started = client.post(
            f"{V}/models/download/manage", json=start, headers=bearer(keys[Role.user])
        )
        assert started.status_code == 200, started.text
        not_admin = client.put(f"{V}/config/update", json=update, headers=bearer(keys[Role.user]))
        assert not_admin.status_code == 403
        current = client.get(f"{V}/config/current", headers=bearer(keys[Role.user])).json()
        assert current["downloads"]["max_retries"] == 3  # the refused update changed nothing
        done = client.put(f"{V}/config/update", json=update, headers=bearer(keys[Role.admin]))
        assert done.status_code == 200
        assert done.json()["updated_settings"] == ["downloads.max_retries"]


def test_a_revoked_key_stops_working_at_once(server: LiveServer) -> None:
    keys = make_keys(server)
    admin = bearer(keys[Role.admin])
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        created = client.post(f"{V}/auth/keys", json={"name": "app", "role": "user"}, headers=admin)
        assert created.status_code == 201
        app_key = created.json()["key"]
        assert client.get("/healthz", headers=bearer(app_key)).status_code == 200
        listed = client.get(f"{V}/auth/keys", headers=admin).json()
        assert [k["name"] for k in listed["data"]] == ["app", "k-admin", "k-read", "k-user"]
        assert all("key" not in k and "secret_sha256" not in k for k in listed["data"])
        assert listed["pagination"]["total"] == 4
        again = client.post(f"{V}/auth/keys", json={"name": "app", "role": "read"}, headers=admin)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "KEY_EXISTS"
        revoked = client.delete(f"{V}/auth/keys/app", headers=admin)
        assert revoked.status_code == 200
        assert revoked.json()["revoked"]["name"] == "app"
        assert client.get("/healthz", headers=bearer(app_key)).status_code == 401
        missing = client.delete(f"{V}/auth/keys/app", headers=admin)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "KEY_NOT_FOUND"
        bad = client.post(f"{V}/auth/keys", json={"name": "../x", "role": "root"}, headers=admin)
        assert bad.status_code == 422
        fields = {e["field"] for e in bad.json()["error"]["details"]["errors"]}
        assert fields == {"body.name", "body.role"}


async def test_the_websocket_needs_a_key_and_takes_it_as_a_browser_can(
    server: LiveServer,
) -> None:
    keys = make_keys(server)
    with pytest.raises(InvalidStatus) as no_key:
        async with connect(server.ws_url, open_timeout=5):
            pass
    assert no_key.value.response.status_code == 401
    assert json.loads(no_key.value.response.body or b"{}")["error"]["code"] == "UNAUTHORIZED"
    with pytest.raises(InvalidStatus) as wrong:
        async with connect(server.ws_url, open_timeout=5, additional_headers=bearer("mdk_x")):
            pass
    assert wrong.value.response.status_code == 401

    async def subscribed(**options: Any) -> dict[str, Any]:
        async with connect(server.ws_url, open_timeout=5, **options) as websocket:
            await websocket.send(json.dumps({"action": "subscribe", "model_ids": ["tiny"]}))
            reply: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), 5))
            reply["subprotocol"] = websocket.subprotocol
            return reply

    by_header = await subscribed(additional_headers=bearer(keys[Role.read]))
    assert by_header["type"] == "subscribed"
    # A browser cannot set headers on a WebSocket: it offers the key as a subprotocol, and
    # the server selects "modeldepot", never echoing the key.
    offered = [Subprotocol("modeldepot"), Subprotocol(f"modeldepot.bearer.{keys[Role.read]}")]
    by_protocol = await subscribed(subprotocols=offered)
    assert by_protocol == {**by_header, "subprotocol": "modeldepot"}
    with pytest.raises(InvalidStatus) as bad_protocol:
        async with connect(
            server.ws_url,
            open_timeout=5,
            subprotocols=[Subprotocol("modeldepot"), Subprotocol("modeldepot.bearer.mdk_nope")],
        ):
            pass
    assert bad_protocol.value.response.status_code == 401


def test_admin_actions_are_audited_and_only_admins_read_the_log(server: LiveServer) -> None:
    keys = make_keys(server)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        client.put(
            f"{V}/config/update",
            json={"downloads": {"max_retries": 4}},
            headers=bearer(keys[Role.admin]),
        )
        client.put(
            f"{V}/config/update",
            json={"downloads": {"max_retries": 6}},
            headers=bearer(keys[Role.user]),
        )
        client.put(f"{V}/config/update", json={"downloads": {"max_retries": 7}})
        client.post(f"{V}/models/health/tiny/repair", json={}, headers=bearer(keys[Role.admin]))
        client.get(f"{V}/models/status/detailed", headers=bearer(keys[Role.admin]))  # not audited
        assert client.get(f"{V}/audit", headers=bearer(keys[Role.user])).status_code == 403
        log = client.get(f"{V}/audit?sort=at&order=desc", headers=bearer(keys[Role.admin]))
        assert log.status_code == 200
        entries = log.json()["data"]
    simplified = [
        (e["actor"], e["action"], e["target"], e["status"], e["outcome"]) for e in entries
    ]
    # The user key's and the missing key's refusals are audited too; reads (the user's
    # try at GET /audit, the admin's status) are not actions.
    assert simplified == [
        ("k-admin", "POST /api/v1/models/health/{model_id}/repair", "tiny", 409, "failed"),
        ("unauthenticated", "PUT /api/v1/config/update", None, 401, "refused"),
        ("k-user", "PUT /api/v1/config/update", None, 403, "refused"),
        ("k-admin", "PUT /api/v1/config/update", None, 200, "ok"),
    ]
    assert all(e["client"] == "127.0.0.1" and e["request_id"] for e in entries)


def test_keys_are_compared_in_constant_time_and_never_logged(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    keys = make_keys(server)
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("modeldepot.auth.keys.hmac.compare_digest", spy)
    caplog.set_level(logging.DEBUG)
    unknown_id = "mdk_0123456789ab_" + "A" * 43
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for key in (keys[Role.read], unknown_id, keys[Role.read][:-1] + "x"):
            client.get("/healthz", headers=bearer(key))
    # A known id, an unknown id and a wrong secret: each is one digest comparison.
    assert len(compared) == 3
    assert all(len(a) == len(b) == 64 for a, b in compared)
    logged = caplog.text
    assert all(secret_of(key) not in logged for key in keys.values())


async def test_keys_are_stored_hashed(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with run_app(settings, resolve=False) as app:
        _, key = await app.services.keys.create("hashed", Role.read)
        async with app.services.sessions() as session:
            rows = (await session.execute(text("select * from api_keys"))).all()
        assert len(rows) == 1
        assert secret_of(key) not in repr(rows)
        store = KeyStore(app.services.sessions)
        assert (await store.authenticate(key)) is not None
        assert await store.authenticate(key.upper()) is None


async def test_a_non_loopback_bind_needs_keys_or_an_explicit_opt_in(
    make_settings: SettingsFactory,
) -> None:
    with pytest.raises(ConfigError, match="MODELDEPOT_AUTH_REQUIRED=true"):
        async with run_app(make_settings(host="0.0.0.0"), resolve=False):
            pass
    async with run_app(make_settings(host="0.0.0.0", auth_required=True), resolve=False) as app:
        assert (await app.client.get("/healthz")).status_code == 401
    async with run_app(
        make_settings(host="0.0.0.0", allow_unauthenticated=True), resolve=False
    ) as app:
        assert (await app.client.get("/healthz")).status_code == 200


def test_serve_on_all_interfaces_without_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MODELDEPOT_DATA_DIR": str(tmp_path / "data"),
        "MODELDEPOT_MODELS_DIR": str(tmp_path / "models"),
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "modeldepot", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert "Refusing to listen on 0.0.0.0 without API keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_keys_commands_manage_keys_a_running_service_sees(
    local_hub: LocalHub, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(hf_endpoint=local_hub.endpoint, auth_required=True)
    for name, value in {
        "MODELDEPOT_DATA_DIR": settings.data_dir,
        "MODELDEPOT_MODELS_DIR": settings.models_dir,
    }.items():
        monkeypatch.setenv(name, str(value))
    runner = CliRunner()
    with live_server(settings) as server, httpx.Client(base_url=server.base_url) as client:
        assert client.get("/healthz").status_code == 401
        created = runner.invoke(cli, ["keys", "create", "laptop", "--role", "admin"])
        assert created.exit_code == 0, created.output
        key = created.output.strip().splitlines()[-1]
        assert key.startswith("mdk_")
        assert "shown this once" in created.output
        assert client.get("/healthz", headers=bearer(key)).status_code == 200
        listed = runner.invoke(cli, ["keys", "list"])
        assert listed.exit_code == 0
        assert "laptop" in listed.output
        assert "admin" in listed.output
        assert secret_of(key) not in listed.output
        taken = runner.invoke(cli, ["keys", "create", "laptop"])
        assert taken.exit_code == 10  # a conflict
        assert "KEY_EXISTS" in taken.output
        audit = client.get(f"{V}/audit", headers=bearer(key)).json()["data"]
        assert [(e["action"], e["target"]) for e in audit] == [("keys create", "laptop")]
        assert audit[0]["actor"].startswith("cli")
        revoked = runner.invoke(cli, ["keys", "revoke", "laptop"])
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/healthz", headers=bearer(key)).status_code == 401
        missing = runner.invoke(cli, ["keys", "revoke", "laptop"])
        assert missing.exit_code == 3
        bad_role = runner.invoke(cli, ["keys", "create", "x", "--role", "root"])
        assert bad_role.exit_code == 2
        # --json: one document on stdout, nothing else.
        made = runner.invoke(cli, ["keys", "create", "script", "--role", "read", "--json"])
        document = json.loads(made.stdout)
        assert (document["name"], document["role"]) == ("script", "read")
        assert client.get("/healthz", headers=bearer(document["key"])).status_code == 200
        gone = json.loads(runner.invoke(cli, ["keys", "revoke", "script", "--json"]).stdout)
        assert gone == {"name": "script", "revoked": True}
        assert client.get("/healthz", headers=bearer(document["key"])).status_code == 401


def test_the_cli_uses_the_key_from_the_environment(
    local_hub: LocalHub, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_hub.create_repo("acme/tiny", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint, auth_required=True)
    runner = CliRunner()
    with live_server(settings, entries=(hub_entry("tiny", "acme/tiny"),)) as server:
        _, key = server.call(lambda services: services.keys.create("reader", Role.read))
        without = runner.invoke(cli, ["ls", "--url", server.base_url])
        assert without.exit_code == 9, without.output
        assert "MODELDEPOT_API_KEY" in without.output
        monkeypatch.setenv("MODELDEPOT_API_KEY", key)
        listed = runner.invoke(cli, ["ls", "--url", server.base_url])
        assert listed.exit_code == 0, listed.output
        assert "tiny" in listed.output


def test_settings_name_the_auth_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPOT_AUTH_REQUIRED", "true")
    monkeypatch.setenv("MODELDEPOT_RATE_LIMITS__EXEMPT_LOOPBACK", "false")
    settings = Settings.load()
    assert settings.auth_required is True
    assert settings.rate_limits.exempt_loopback is False


async def drain(websocket: Any) -> None:
    """Read until the server closes (events may still arrive until its next look)."""
    while True:
        await websocket.recv()


async def test_a_revoked_key_loses_its_open_websocket(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modeldepot.api.routes.ws.KEY_RECHECK_SECONDS", 0.05)
    keys = make_keys(server)
    async with connect(
        server.ws_url, open_timeout=5, additional_headers=bearer(keys[Role.read])
    ) as websocket:
        await websocket.send(json.dumps({"action": "subscribe"}))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))["type"] == "subscribed"
        await server.acall(lambda services: services.keys.revoke("k-read"))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(drain(websocket), 10)
    assert websocket.close_code == 1008
    assert websocket.close_reason == "API key revoked"


async def test_refusals_that_would_flood_the_audit_log_are_not_kept(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(
        auth_required=True, rate_limits={"exempt_loopback": False, "admin_per_minute": 2}
    )
    async with run_app(settings, resolve=False) as app:
        _, admin = await app.services.keys.create("admin", Role.admin)
        update = {"downloads": {"max_retries": 4}}
        answers = [
            (await app.client.put(f"{V}/config/update", json=update, headers=bearer(admin)))
            for _ in range(5)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429, 429, 429]
        entries, total = await app.services.audit.page(
            sort="at", descending=False, offset=0, limit=100
        )
    assert total == 2  # what the rate limit turned away is not recorded
    assert {e.status for e in entries} == {200}


async def test_the_audit_log_keeps_the_newest_entries(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        audit = AuditLog(app.services.sessions, keep=3, prune_every=2)
        for n in range(9):
            await audit.record(
                actor="a", role=None, client=None, action=f"act {n}", target=None, status=200
            )
        entries, total = await audit.page(sort="at", descending=False, offset=0, limit=100)
    assert total <= 3 + 2  # kept, plus what came since the last pruning
    assert entries[-1].action == "act 8"
    assert "act 0" not in {e.action for e in entries}


def test_a_key_name_is_matched_whole() -> None:
    for bad in ("nl\n", "a b", "", "-x", "x" * 65, "é"):
        with pytest.raises(InvalidInput):
            validate_key_name(bad)
    assert validate_key_name("laptop.home_1-2") == "laptop.home_1-2"


def test_demo_keys_live_in_the_demo_database(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    monkeypatch.setenv("MODELDEPOT_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "shown", "--role", "read", "--demo"])
    assert created.exit_code == 0, created.output
    demo = json.loads(runner.invoke(cli, ["keys", "list", "--json", "--demo"]).output)
    real = json.loads(runner.invoke(cli, ["keys", "list", "--json"]).output)
    assert [k["name"] for k in demo] == ["shown"]
    assert real == []
    assert (settings.data_dir / "demo" / "modeldepot.db").is_file()

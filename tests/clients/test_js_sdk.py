"""The JavaScript SDK (``clients/js``) against the real service (issue 13).

pytest serves what the node tests need and runs them (``node --test``): the real service
under uvicorn with a catalogue on the local hub, and a second one with API keys required
and loopback clients rate limited (for 401, 403 and 429). The node side finds them
through environment variables (``clients/js/test/support.js``). Downloads that must be
seen in flight are throttled at the hub, and the WebSocket's reconnect is provoked by a
TCP proxy the node test runs and cuts itself (the transport seam).

``clients/js/node_modules`` comes from ``npm ci`` (the setup runs it; this module runs it
when it is missing). Without node the tests skip locally and fail under CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from modeldepot.api.app import create_app
from modeldepot.api.routes import downloads, health, status, storage
from modeldepot.auth.keys import Role
from modeldepot.events import (
    DownloadProgress,
    FallbackSuggestion,
    ModelAvailabilityChange,
    ModelHealthAlert,
    QueueEntryChange,
)
from modeldepot.testing import LocalHub, Throttle
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, hub_entry

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
NODE_TIMEOUT_S = 150

# Every node test file uses models of its own: the files run at the same time.
FAST = 200_000  # bytes a second: a 250 kB model takes a little over a second
REPOS: dict[str, tuple[int, int | None]] = {
    # model id: (size in bytes, throttle in bytes a second or None)
    "my-model": (250_000, FAST),  # seed-example.test.js: the seed's usage example
    "ws-model": (250_000, FAST),  # websocket.test.js: progress to COMPLETED
    "reconnect-model": (250_000, FAST),  # websocket.test.js: events after a reconnect
    "tiny-model": (40_000, None),  # client.test.js: downloads, health, usage, cleanup
    "ready-model": (40_000, None),  # client.test.js: the wait queue's claim
    "slow-model": (1_000_000, 10_000),  # client.test.js: pause, resume, queue, cancel
    "busy-model": (1_000_000, 10_000),  # errors.test.js: 409 DOWNLOAD_IN_PROGRESS
    "std-model": (250_000, FAST),  # standard-websocket.mjs: the platform's WebSocket
}


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node (20 or later) must be installed in CI")
        pytest.skip("node is not installed")
    return node


def _ensure_node_modules() -> None:
    if (JS / "node_modules" / "ws").is_dir() and (JS / "node_modules" / "typescript").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("clients/js/node_modules is missing and npm is not installed")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300)


def _make_repos(hub: LocalHub) -> None:
    for model_id, (size, throttle) in REPOS.items():
        repo = f"acme/{model_id}"
        hub.create_repo(repo, {"model.ckpt": os.urandom(size), "config.json": b"{}"})
        if throttle is not None:
            hub.faults.add(
                Throttle(bytes_per_second=throttle), repo=repo, filename="model.ckpt", times=None
            )


@contextmanager
def _services(
    hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Both services running; yields the environment the node tests read."""
    _make_repos(hub)
    entries = [hub_entry(model_id, f"acme/{model_id}") for model_id in REPOS]
    open_settings = make_settings(
        hf_endpoint=hub.endpoint, downloads={"max_concurrent_downloads": 16}
    )
    secured_settings = make_settings(
        hf_endpoint=hub.endpoint,
        models_dir=tmp_path / "secured" / "models",
        data_dir=tmp_path / "secured" / "data",
        auth_required=True,
        rate_limits={"exempt_loopback": False, "default_per_minute": 20},
    )
    with ExitStack() as stack:
        server = stack.enter_context(live_server(open_settings, entries=entries))
        secured = stack.enter_context(live_server(secured_settings, entries=entries[:1]))
        server.call(lambda s: s.catalog.refresh_all(), timeout=20)
        yield {
            "MODELDEPOT_BASE_URL": f"{server.base_url}/api/v1",
            "MODELDEPOT_AUTH_BASE_URL": f"{secured.base_url}/api/v1",
            "MODELDEPOT_TEST_MODELS": ",".join(REPOS),
            **_keys(secured),
        }


def _keys(secured: LiveServer) -> dict[str, str]:
    """One key per role the auth tests need, and one spent only by the rate-limit test
    (limits count per key)."""
    wanted = {
        "MODELDEPOT_ADMIN_KEY": ("admin", Role.admin),
        "MODELDEPOT_READ_KEY": ("reader", Role.read),
        "MODELDEPOT_LIMITED_KEY": ("limited", Role.read),
    }
    keys = {}
    for variable, (name, role) in wanted.items():
        _info, key = secured.call(lambda s, n=name, r=role: s.keys.create(n, r))
        keys[variable] = key
    return keys


def _node_runs(node: str) -> list[list[str]]:
    """The node commands: the *.test.js files (their event streams on ``ws``, as on Node
    20, whatever the node), and standard-websocket.mjs on the platform's own WebSocket
    (Node 20 has one behind a flag)."""
    tests = sorted(str(path.relative_to(JS)) for path in (JS / "test").glob("*.test.js"))
    assert len(tests) >= 7, tests
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    assert major >= 20, f"the SDK needs node 20 or later, not {version.stdout}"
    flag = ["--experimental-websocket"] if major < 22 else []
    reporter = "--test-reporter=spec"
    return [
        [node, "--test", reporter, *tests],
        [node, *flag, "--test", reporter, "test/standard-websocket.mjs"],
    ]


def _passed_every_test(output: str, *, at_least: int) -> bool:
    """The spec reporter's summary says every test ran and passed (a node test skips
    when the service's address is missing, which must not pass for green)."""
    summary = dict(re.findall(r"^\u2139 (tests|pass|skipped) (\d+)$", output, re.M))
    return int(summary.get("tests", 0)) >= at_least and summary.get("pass") == summary["tests"]


@pytest.mark.timeout(NODE_TIMEOUT_S + 60)
def test_the_js_sdk_against_the_real_service(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    node = _require_node()
    _ensure_node_modules()
    runs = _node_runs(node)
    with _services(local_hub, make_settings, tmp_path) as env:
        children = [
            subprocess.Popen(
                command,
                cwd=JS,
                env={**os.environ, **env, "NO_COLOR": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for command in runs
        ]
        outputs = []
        for child in children:
            try:
                outputs.append(child.communicate(timeout=NODE_TIMEOUT_S)[0])
            finally:
                child.kill()
    suite, standard = outputs
    assert children[0].returncode == 0, suite
    assert _passed_every_test(suite, at_least=35), suite
    assert children[1].returncode == 0, standard
    assert _passed_every_test(standard, at_least=2), standard


def test_the_js_sdk_type_checks() -> None:
    """``tsc --noEmit``: index.d.ts is valid and test/types-check.ts uses the API as typed."""
    node = _require_node()
    _ensure_node_modules()
    tsc = JS / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run(
        [node, str(tsc), "--noEmit", "-p", str(JS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_the_js_package_matches_the_python_one() -> None:
    package = json.loads((JS / "package.json").read_text())
    lock = json.loads((JS / "package-lock.json").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert package["name"] == "modeldepot"
    assert package["version"] == pyproject["project"]["version"] == lock["version"]
    assert package["license"] == pyproject["project"]["license"]
    assert package["type"] == "module"
    assert package["engines"] == {"node": ">=20"}
    assert package["peerDependenciesMeta"] == {"ws": {"optional": True}}
    for path in (package["exports"]["."]["default"], package["types"]):
        assert (JS / path).is_file(), path


# index.d.ts names two OpenAPI components more plainly than pydantic's generics do.
TS_NAMES = {"Page_AuditEntry_": "AuditLogPage", "Page_KeyPublic_": "ApiKeysPage"}
SORTS = {
    status: "StatusSort",
    downloads: "ActiveSort",
    health: "HealthSort",
    storage: "StorageSort",
}
EVENT_INTERFACES = {
    DownloadProgress: "DownloadProgressMessage",
    ModelHealthAlert: "HealthAlertMessage",
    ModelAvailabilityChange: "AvailabilityChangeMessage",
    FallbackSuggestion: "FallbackSuggestionMessage",
    QueueEntryChange: "QueueEntryChangeMessage",
}


def _declarations() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """index.d.ts's interfaces (name: field names) and string unions (name: values)."""
    text = (JS / "src" / "index.d.ts").read_text()
    interfaces = {
        name: set(re.findall(r"^  (\w+)\??:", body, re.M))
        for name, body in re.findall(r"^export interface (\w+) \{\n(.*?)^\}", text, re.M | re.S)
    }
    unions = {
        name: set(re.findall(r'"([^"]*)"', body))
        for name, body in re.findall(r'^export type (\w+) = ((?:"[^"]*"(?: \| )?)+);', text, re.M)
    }
    return interfaces, unions


def test_the_js_types_have_the_services_fields(make_settings: SettingsFactory) -> None:
    """Every schema of the OpenAPI document and every WebSocket event has its interface in
    index.d.ts, with exactly its fields (and every enum its values): the hand-written
    types cannot drift from the service unnoticed."""
    schemas = create_app(make_settings()).openapi()["components"]["schemas"]
    interfaces, unions = _declarations()
    for name, schema in schemas.items():
        ts_name = TS_NAMES.get(name, name)
        if "enum" in schema:
            assert unions.get(ts_name) == set(schema["enum"]), ts_name
        elif "properties" in schema:
            assert interfaces.get(ts_name) == set(schema["properties"]), ts_name
    for event, ts_name in EVENT_INTERFACES.items():
        assert interfaces[ts_name] == set(event.model_fields) - {"final"}, ts_name
    for route, ts_name in SORTS.items():
        assert unions[ts_name] == set(route.SORT_KEYS), ts_name

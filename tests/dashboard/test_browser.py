"""The dashboard in a real browser against the real service under uvicorn and the local
hub: what a person sees and does. Every wait is on the page's state (Playwright's
``expect``), bounded by ``browser.WAIT_MS``; one browser serves the whole module."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from modeldepot.auth.keys import Role
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.settings import Settings
from modeldepot.testing import LocalHub, Throttle
from tests.dashboard.browser import chromium, open_page, require_browser
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, hub_entry, run_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

FILE = "model.ckpt"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with open_page(browser) as (opened, errors):
        yield opened
    assert errors == [], "the page logged errors"


def publish(
    hub: LocalHub, make_settings: SettingsFactory, sizes: dict[str, int], **settings: Any
) -> tuple[Settings, list[CatalogEntry]]:
    """One hub repo per model (``acme/<model>``, one file), and settings that use them."""
    for model, size in sizes.items():
        hub.create_repo(f"acme/{model}", {FILE: os.urandom(size)})
    entries = [hub_entry(model, f"acme/{model}") for model in sizes]
    return make_settings(hf_endpoint=hub.endpoint, **settings), entries


@contextmanager
def serving(
    hub: LocalHub, make_settings: SettingsFactory, sizes: dict[str, int], **settings: Any
) -> Iterator[LiveServer]:
    """The real service under uvicorn for those models."""
    config, entries = publish(hub, make_settings, sizes, **settings)
    with live_server(config, entries=entries) as server:
        server.call(lambda services: services.catalog.refresh_all(), timeout=20)
        yield server


def install(server: LiveServer, model: str) -> None:
    answer = httpx.post(
        f"{server.base_url}/api/v1/models/download/manage",
        json={"model_id": model, "action": "start"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    server.call(lambda services: services.downloads.run_until_idle(), timeout=20)


def api(server: LiveServer, path: str) -> Any:
    answer = httpx.get(f"{server.base_url}/api/v1{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def load(page: Page, server: LiveServer, view: str = "models") -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.base_url}/#{view}")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def row(page: Page, model: str) -> Locator:
    return page.locator(f'tr[data-model-id="{model}"]')


def blob_of(models_dir: Path, model: str) -> Path:
    snapshots = models_dir / f"models--acme--{model}" / "snapshots"
    return (next(snapshots.iterdir()) / FILE).resolve()


BETWEEN = """(model) => {
  const bar = document.querySelector(`tr[data-model-id="${model}"] progress`);
  return bar && !bar.hidden && bar.value > 0 && bar.value < 100;
}"""


def test_a_download_fills_its_bar_live_and_the_model_turns_available(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    with serving(local_hub, make_settings, {"alpha": 300_000}) as server:
        local_hub.faults.add(Throttle(bytes_per_second=100_000), repo="acme/alpha", times=None)
        load(page, server)
        alpha = row(page, "alpha")
        expect(alpha.locator(".badge-status")).to_have_text("Missing")
        alpha.get_by_role("button", name="Download alpha").click()
        page.wait_for_function(BETWEEN, arg="alpha")
        midway = alpha.locator(".progress-text").inner_text()
        expect(alpha.locator(".badge-status")).to_have_text("Available")
        expect(alpha.locator("progress")).to_have_js_property("value", 100)
        expect(alpha.locator(".progress-text")).to_have_text("100.0 % · Completed")
        expect(alpha.get_by_role("button", name="Check alpha")).to_be_visible()
        commit = api(server, "/models/status/detailed/alpha")["current_version"]
        expect(alpha.locator(".col-version code")).to_have_text(commit[:7])
        expect(page.locator("#models-summary")).to_contain_text("1 available")
    # "12.3 % · 98.0 kB/s · ETA 2 s" while it ran
    assert re.fullmatch(r"\d+\.\d % · [\d.]+ (B|kB|MB)/s · ETA \d+ s", midway), midway


def test_pause_resume_priority_and_cancel_from_the_row(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    with serving(local_hub, make_settings, {"beta": 1_000_000}) as server:
        local_hub.faults.add(Throttle(bytes_per_second=50_000), repo="acme/beta", times=None)
        load(page, server)
        beta = row(page, "beta")
        beta.get_by_role("button", name="Download beta").click()
        page.wait_for_function(BETWEEN, arg="beta")
        beta.get_by_role("combobox", name="Priority of beta").select_option("high")
        expect(page.locator("#notice")).to_have_text("Download updated")
        assert api(server, "/models/download/active")["active_downloads"][0]["priority"] == "high"

        beta.get_by_role("button", name="Pause beta").click()
        expect(beta.locator(".badge-status")).to_have_text("Paused")
        expect(beta.locator(".progress-text")).to_contain_text("Paused")
        # the keyboard focus moves to what can be done now, not to the page's top
        expect(beta.get_by_role("button", name="Resume beta")).to_be_focused()
        assert api(server, "/models/download/progress/beta")["status"] == "PAUSED"

        page.keyboard.press("Enter")  # Resume, from the keyboard
        expect(beta.locator(".badge-status")).to_have_text("Downloading")
        beta.get_by_role("button", name="Cancel beta").click()
        expect(beta.locator(".badge-status")).to_have_text("Missing")
        expect(beta.get_by_role("button", name="Download beta")).to_be_visible()
        assert api(server, "/models/download/progress/beta")["status"] == "CANCELLED"


def test_a_check_finds_a_corrupted_file_and_a_repair_fixes_it(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    with serving(local_hub, make_settings, {"gamma": 200_000}) as server:
        install(server, "gamma")
        blob = blob_of(server.services.models_dir, "gamma")
        good = blob.read_bytes()
        blob.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])  # same size
        load(page, server)
        gamma = row(page, "gamma")
        expect(gamma.locator(".badge-status")).to_have_text("Available")

        gamma.get_by_role("button", name="Check gamma").click()
        alert = page.locator('#alerts-list li[data-model-id="gamma"]')
        expect(alert).to_be_visible()
        expect(gamma.locator(".badge-status")).to_have_text("Corrupted")
        expect(gamma.locator(".badge-health")).to_have_text("Corrupted")
        expect(page.locator("#notice")).to_contain_text(f"Check of gamma: Corrupted ({FILE}")

        alert.get_by_role("button", name="Repair gamma").click()
        expect(page.locator("#notice")).to_have_text("Repair of gamma finished: healthy")
        expect(gamma.locator(".badge-status")).to_have_text("Available")
        expect(gamma.locator(".badge-health")).to_have_text("Healthy")
        expect(page.locator("#alerts")).to_be_hidden()
    assert blob.read_bytes() == good


def test_a_cleanup_dry_run_previews_and_removes_nothing(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    with serving(local_hub, make_settings, {"delta": 100_000, "omega": 50_000}) as server:
        install(server, "delta")
        load(page, server, "storage")
        expect(page.locator("#storage-models svg")).to_contain_text("delta")
        page.get_by_label("The models I choose").check()
        page.get_by_role("checkbox", name=re.compile(r"^delta ")).check()
        page.get_by_role("button", name="Preview (dry run)").click()
        decisions = page.locator(".cleanup-decisions")
        expect(decisions.locator("tr", has_text="delta")).to_contain_text("Would be removed")
        expect(page.locator("#cleanup-result h3")).to_contain_text("Preview: 1 would be removed")
        expect(page.get_by_role("button", name="Remove these models")).to_be_enabled()
        status = api(server, "/models/status/detailed/delta")["availability_status"]
        assert blob_of(server.services.models_dir, "delta").is_file()
    assert status == "AVAILABLE"


def test_the_configuration_form_shows_refusals_beside_their_fields(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    with serving(local_hub, make_settings, {"epsilon": 1000}) as server:
        load(page, server, "config")
        # The view's first fetches (the schema, the configuration, the catch-up after the
        # live stream connects) all answered: a form rendered again later would drop the
        # value typed into the one it replaced (seen once in CI).
        page.wait_for_load_state("networkidle")
        field = page.get_by_label("Max concurrent downloads")
        field.fill("0")
        expect(field).to_have_value("0")
        page.get_by_role("button", name="Save changes").click()
        error = page.locator("#config-downloads-max_concurrent_downloads-error")
        expect(error).to_have_text("Input should be greater than or equal to 1")
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_be_focused()
        expect(page.locator("#problem")).to_contain_text("Invalid configuration update")

        field.fill("5")
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator("#notice")).to_have_text("Saved: downloads.max_concurrent_downloads")
        expect(error).to_have_count(0)
        saved = api(server, "/config/current")["downloads"]["max_concurrent_downloads"]
    assert saved == 5


def test_analytics_chart_the_reported_uses_and_the_queues_list_waiting_requests(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    with serving(local_hub, make_settings, {"theta": 200_000}) as server:
        local_hub.faults.add(Throttle(bytes_per_second=20_000), repo="acme/theta", times=None)
        done = {"model_id": "theta", "type": "generation_completed", "duration_seconds": 42.0}
        events = [{"event_id": f"use-{n}", **done} for n in range(3)]
        reported = httpx.post(
            f"{server.base_url}/api/v1/models/usage", json={"events": events}, timeout=10
        )
        assert reported.status_code == 200, reported.text
        request = {"model_id": "theta", "request": {"prompt": "a boat", "parameters": {}}}
        queued = httpx.post(
            f"{server.base_url}/api/v1/models/fallback/queue", json=request, timeout=10
        )
        assert queued.status_code == 200, queued.text
        load(page, server, "analytics")
        expect(page.locator("#analytics-summary")).to_contain_text("3 generations with 1 model")
        uses = page.locator("#analytics-uses svg rect.series-0")
        expect(uses).to_have_count(1)  # today's bar
        expect(uses.locator("title")).to_have_text(re.compile(r"theta: 3$"))
        expect(page.locator("#analytics-times svg circle")).to_have_count(1)
        expect(page.locator("#analytics-table")).to_contain_text("42.0 s")

        page.get_by_role("link", name="Queues").click()
        waiting = page.locator("#queue-waiting tr", has_text=queued.json()["queue_id"])
        expect(waiting).to_contain_text("Waiting")
        expect(page.locator("#queue-downloads")).to_contain_text("theta")
        waiting.get_by_role("button", name=re.compile("^Withdraw")).click()
        expect(waiting).to_contain_text("Cancelled")


def test_with_api_keys_on_the_page_asks_for_one_and_uses_it_for_the_live_stream_too(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    with serving(local_hub, make_settings, {"zeta": 1000}, auth_required=True) as server:
        _, key = server.call(lambda services: services.keys.create("dashboard", Role.read))
        refused = httpx.get(f"{server.base_url}/api/v1/models/status/detailed", timeout=10)
        assert refused.status_code == 401
        page.goto(server.base_url)
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("An API key is required")
        dialog.get_by_label("API key").fill(key)
        dialog.get_by_role("button", name="Use this key").click()
        zeta = row(page, "zeta")
        expect(zeta.locator(".badge-status")).to_have_text("Missing")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        assert page.evaluate("sessionStorage.getItem('modeldepot.apiKey')") == key
        # a read-only key: the service's refusal reads as its sentence
        zeta.get_by_role("button", name="Download zeta").click()
        expect(page.locator("#problem")).to_have_text(
            "The key 'dashboard' has the role 'read'; this action needs 'user'"
        )


def test_when_the_service_restarts_the_page_says_so_reconnects_and_catches_up(
    page: Page, local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    from playwright.sync_api import expect

    settings, entries = publish(local_hub, make_settings, {"eta": 100_000})
    eta = row(page, "eta")
    live = page.locator("#live-status")
    with live_server(settings, entries=entries) as server:
        port = server.port  # the restarted service listens where this one did
        load(page, server)
        expect(eta.locator(".badge-status")).to_have_text("Missing")
    expect(live).to_have_attribute("data-state", "waiting")
    eta.get_by_role("button", name="Download eta").click()
    expect(page.locator("#problem")).to_contain_text("does not answer")

    async def install_meanwhile() -> None:  # another process, while the service is down
        async with run_app(settings, entries=tuple(entries)) as app:
            start = {"model_id": "eta", "action": "start"}
            answer = await app.client.post("/api/v1/models/download/manage", json=start)
            assert answer.status_code == 200, answer.text
            await asyncio.wait_for(app.services.downloads.run_until_idle(), 20)

    # on a thread of its own: Playwright's sync API keeps an event loop on this one
    with ThreadPoolExecutor(1) as other:
        other.submit(asyncio.run, install_meanwhile()).result(timeout=30)
    expect(eta.locator(".badge-status")).to_have_text("Missing")  # it heard nothing
    with live_server(settings, entries=entries, port=port):
        expect(live).to_have_attribute("data-state", "live")
        expect(eta.locator(".badge-status")).to_have_text("Available")
        expect(eta.get_by_role("button", name="Check eta")).to_be_visible()

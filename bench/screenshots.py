"""Screenshots of the dashboard for the README: ``docs/screenshots/*.png``.

The real service under uvicorn and the local hub, with a scene a user would recognise:
an installed and pinned model, one downloading (throttled, so it is caught midway), one
with a corrupted file a check found, one with an update on the hub, one missing, a month
of usage reports, a quota, a generation request waiting in the queue. Then Debian's
Chromium (through Playwright, headless, 1366x768: a laptop) photographs each view.

    .venv/bin/python bench/screenshots.py [--out docs/screenshots]

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and ``pip install
'playwright>=1.50'``; nothing is downloaded. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.live_server: the real service on a free port

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from tests.live_server import LiveServer, live_server  # noqa: E402
from tests.support import hub_entry  # noqa: E402

from modeldepot.settings import Settings  # noqa: E402
from modeldepot.testing import LocalHub, Throttle, make_safetensors  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1366, "height": 768}
FILE = "diffusion_pytorch_model.safetensors"
MODELS: dict[str, tuple[str, str, int]] = {
    # id: (display name, model type, bytes)
    "wan-t2v-a14b": ("Wan2.2 T2V A14B", "text-to-video", 6_000_000),
    "wan-ti2v-5b": ("Wan2.2 TI2V 5B", "text-image-to-video", 4_000_000),
    "wan-i2v-a14b": ("Wan2.2 I2V A14B", "image-to-video", 5_000_000),
    "sdxl-base": ("SDXL base 1.0", "text-to-image", 2_500_000),
    "flux-schnell": ("FLUX.1 schnell", "text-to-image", 3_000_000),
}
DOWNLOADING = "wan-ti2v-5b"
CORRUPTED = "wan-i2v-a14b"
UPDATED = "sdxl-base"
MISSING = "flux-schnell"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, LocalHub(Path(scratch) / "hub") as hub:
        settings = Settings(
            models_dir=Path(scratch) / "models",
            data_dir=Path(scratch) / "data",
            allowed_models_roots=[Path(scratch)],
            hf_endpoint=hub.endpoint,
            hf_token=None,
            offline=False,
        )
        for seed, (model, (_, _, size)) in enumerate(MODELS.items()):
            hub.create_repo(f"acme/{model}", {FILE: _weights(size, seed)})
        entries = [
            hub_entry(model, f"acme/{model}", display_name=name, model_type=kind)
            for model, (name, kind, _) in MODELS.items()
        ]
        with live_server(settings, entries=entries) as server:
            server.call(lambda services: services.catalog.refresh_all(), timeout=30)
            _stage(server, hub)
            _photograph(server, args.out)
    print(f"wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} to {args.out}")


def _stage(server: LiveServer, hub: LocalHub) -> None:
    client = httpx.Client(base_url=f"{server.base_url}/api/v1", timeout=30)
    installed = [m for m in MODELS if m not in (DOWNLOADING, MISSING)]
    for model in installed:
        _ok(client.post("/models/download/manage", json={"model_id": model, "action": "start"}))
    server.call(lambda services: services.downloads.run_until_idle(), timeout=60)
    _ok(client.put(f"/models/pins/{installed[0]}", json={"reason": "the studio's default"}))
    _ok(client.post(f"/models/health/{installed[0]}/check", json={"check_type": "full"}))
    # a new commit on the hub: an update is available
    hub.commit(f"acme/{UPDATED}", add={FILE: _weights(MODELS[UPDATED][2], seed=99)})
    _ok(client.get(f"/models/status/detailed/{UPDATED}", params={"refresh": "true"}))
    # a month of generations
    _ok(client.post("/models/usage", json={"events": _usage(installed)}))
    _ok(client.put("/config/update", json={"storage": {"max_storage_gb": 0.03}}))
    # one download caught midway, and a request waiting for it
    hub.faults.add(Throttle(bytes_per_second=60_000), repo=f"acme/{DOWNLOADING}", times=None)
    _ok(client.post("/models/download/manage", json={"model_id": DOWNLOADING, "action": "start"}))
    queued = {
        "model_id": DOWNLOADING,
        "request": {"prompt": "a lighthouse at dusk", "parameters": {}},
    }
    _ok(client.post("/models/fallback/queue", json=queued))


def _weights(size: int, seed: int) -> bytes:
    return make_safetensors({"weight": ("F32", [size // 4])}, seed=seed)


def _usage(models: list[str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rng = random.Random(13)
    events = []
    for day in range(30):
        for model_index, model in enumerate(models):
            for n in range(rng.randint(0, 6 - model_index)):
                at = now - timedelta(days=day, minutes=rng.randint(1, 600))
                events.append(
                    {
                        "event_id": f"{model}-{day}-{n}",
                        "model_id": model,
                        "type": "generation_completed",
                        "at": at.isoformat(),
                        "duration_seconds": round(rng.uniform(20, 40) * (1 + model_index / 2), 1),
                    }
                )
    return events


def _ok(answer: httpx.Response) -> None:
    if answer.status_code >= 300:
        raise SystemExit(f"{answer.request.method} {answer.request.url}: {answer.text}")


def _photograph(server: LiveServer, out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        page.set_default_timeout(30_000)
        page.goto(f"{server.base_url}/#models")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        _corrupt_and_check(page, server)
        page.wait_for_function(
            f"""() => {{
              const bar = document.querySelector('tr[data-model-id="{DOWNLOADING}"] progress');
              return bar && bar.value > 20 && bar.value < 80;
            }}"""
        )
        page.screenshot(path=out / "models.png")
        for view, ready in (
            ("storage", "#storage-models svg"),
            ("analytics", "#analytics-uses svg"),
            ("queue", "#queue-waiting table"),
        ):
            page.goto(f"{server.base_url}/#{view}")
            page.locator(ready).wait_for()
            if view == "storage":
                _preview_cleanup(page)
            page.screenshot(path=out / f"{view}.png", full_page=view != "queue")
        page.goto(f"{server.base_url}/#config")
        field = page.get_by_label("Max concurrent downloads")
        field.fill("0")
        page.get_by_role("button", name="Save changes").click()
        page.locator(".field-error").wait_for()
        page.screenshot(path=out / "config.png")
        browser.close()


def _preview_cleanup(page: Page) -> None:
    page.get_by_label("The models I choose").check()
    page.get_by_role("checkbox", name=f"{UPDATED} ").check()
    page.get_by_role("button", name="Preview (dry run)").click()
    page.locator(".cleanup-decisions").wait_for()


def _corrupt_and_check(page: Page, server: LiveServer) -> None:
    snapshots = server.services.models_dir / f"models--acme--{CORRUPTED}" / "snapshots"
    blob = (next(snapshots.iterdir()) / FILE).resolve()
    data = bytearray(blob.read_bytes())
    data[-4096] ^= 0xFF  # in the tensor data: the header still parses
    blob.write_bytes(bytes(data))
    page.get_by_role("button", name=f"Check {CORRUPTED}").click()
    page.locator(f'#alerts-list li[data-model-id="{CORRUPTED}"]').wait_for()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    main()

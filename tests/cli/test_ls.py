"""``modeldepot ls``: in-process, and through a running service when one is up."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from modeldepot.testing import LocalHub, Throttle, demo_repo_files, write_random_file
from tests.cli.test_pull import cli_env, invoke
from tests.live_server import live_server
from tests.support import SettingsFactory, hub_entry

WIDE = {"COLUMNS": "200"}  # no wrapping in the table: one row per model


def row(output: str, model_id: str) -> list[str]:
    """The cells of ``model_id``'s row in the rendered table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]  # between the borders
        if cells and cells[0] == model_id:
            return cells
    raise AssertionError(f"no row for {model_id} in:\n{output}")


def test_ls_in_process_shows_status_size_version_and_source_errors(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    commit = local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    models = {"tiny-video": "acme/tiny-video", "ghost": "acme/does-not-exist"}
    env = cli_env(tmp_path, hub=local_hub, models=models) | WIDE

    before = invoke(["ls"], env)
    pulled = invoke(["pull", "tiny-video", "--json"], env)
    after = invoke(["ls"], env)

    assert before.exit_code == 0, before.output
    assert row(before.stdout, "tiny-video")[1] == "MISSING"
    assert pulled.exit_code == 0, pulled.output
    assert after.exit_code == 0, after.output
    _, status, size, progress, version, note = row(after.stdout, "tiny-video")
    assert status == "AVAILABLE"
    assert float(size) > 0
    assert progress == ""
    assert version == commit[:12]
    assert note == ""
    ghost = row(after.stdout, "ghost")
    assert ghost[1] == "MISSING"
    assert "acme/does-not-exist does not exist" in ghost[5]
    for builtin in ("T2V-A14B", "I2V-A14B", "TI2V-5B"):
        assert builtin in after.stdout


def test_ls_through_the_service_shows_a_download_in_progress(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    files: dict[str, bytes | Path] = {
        "config.json": b"{}",
        "model.safetensors": write_random_file(tmp_path / "big.bin", 3_000_000, seed=1),
    }
    local_hub.create_repo("acme/tiny-video", files)
    local_hub.faults.add(Throttle(bytes_per_second=1_000_000), server="cdn")
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    entries = (hub_entry("tiny-video", "acme/tiny-video"),)
    with live_server(settings, entries=entries) as server, httpx.Client() as client:
        api = f"{server.base_url}/api/v1/models/download"
        client.post(f"{api}/manage", json={"model_id": "tiny-video", "action": "start"})
        deadline = time.monotonic() + 10
        while client.get(f"{api}/progress/tiny-video").json()["downloaded_mb"] < 0.1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # No catalogue and other directories for the client: only the service knows it.
        env = cli_env(tmp_path / "client", hub=local_hub, port=server.port) | WIDE

        result = invoke(["ls"], env)

        client.post(f"{api}/manage", json={"model_id": "tiny-video", "action": "cancel"})
    assert result.exit_code == 0, result.output
    _, status, size, progress, version, _ = row(result.stdout, "tiny-video")
    assert status == "DOWNLOADING"
    assert size == "3.0"
    assert re.fullmatch(r"\d+%", progress)
    assert 0 < int(progress[:-1]) < 100
    assert version == ""
    assert not (tmp_path / "client" / "data").exists()  # nothing ran in-process


def test_ls_without_a_service_says_it_works_in_process(local_hub: LocalHub, tmp_path: Path) -> None:
    local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    env = cli_env(tmp_path, hub=local_hub, models={"tiny-video": "acme/tiny-video"}) | WIDE

    result = invoke(["ls"], env)

    assert result.exit_code == 0, result.output
    port = env["MODELDEPOT_PORT"]
    assert f"No modeldepot service answers at http://127.0.0.1:{port}" in result.stderr
    assert "working in this process" in result.stderr
    assert "MODELDEPOT_URL" in result.stderr
    assert row(result.stdout, "tiny-video")[1] == "MISSING"
    assert (tmp_path / "data").is_dir()  # it did run here


def test_a_named_url_that_does_not_answer_fails_instead_of_working_in_process(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, hub=local_hub) | WIDE
    closed = f"http://127.0.0.1:{env['MODELDEPOT_PORT']}"  # a free port: nothing listens

    by_option = invoke(["ls", "--url", closed], env)
    by_env = invoke(["pull", "TI2V-5B"], env | {"MODELDEPOT_URL": closed})
    not_a_url = invoke(["ls", "--url", "ftp://example"], env)

    for result in (by_option, by_env):
        assert result.exit_code == 8, result.output
        assert f"SERVICE_UNREACHABLE: No modeldepot service at {closed}" in result.stderr
        assert result.stdout == ""
    assert not_a_url.exit_code == 2, not_a_url.output
    assert "VALIDATION_ERROR: Not an http(s) URL" in not_a_url.stderr
    assert not (tmp_path / "data").exists()  # nothing ran in-process


def test_url_reaches_a_service_on_another_address_with_the_api_path_or_without(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    local_hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    entries = (hub_entry("tiny-video", "acme/tiny-video"),)
    with live_server(settings, entries=entries) as server:
        # The client's own configuration names another (free) port: only the URL leads there.
        env = cli_env(tmp_path / "client", hub=local_hub) | WIDE

        by_option = invoke(["ls", "--url", f"{server.base_url}/api/v1/"], env)
        by_env = invoke(["ls"], env | {"MODELDEPOT_URL": server.base_url})

    for result in (by_option, by_env):
        assert result.exit_code == 0, result.output
        assert row(result.stdout, "tiny-video")[1] == "MISSING"
        assert "working in this process" not in result.stderr
    assert not (tmp_path / "client" / "data").exists()  # nothing ran in-process

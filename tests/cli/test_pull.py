"""``modeldepot pull``: in-process and through a running service, against the local hub.

Every test runs the real command (typer's ``CliRunner``, or a real process for Ctrl-C)
with the environment a user would set: a catalogue file, the models and data directories,
``HF_ENDPOINT`` and ``MODELDEPOT_PORT`` (a free port unless a service should be found).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from modeldepot.cli.main import app
from modeldepot.testing import LocalHub, Status, Throttle, demo_repo_files, write_random_file
from tests.cli.test_cli import free_port
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory, hub_entry

REPO = "acme/tiny-video"
MODEL = "tiny-video"


def write_catalog(path: Path, models: dict[str, str]) -> Path:
    """A catalogue TOML file with one hub model per ``{model_id: repo_id}``."""
    tables = [
        f'[[models]]\nid = "{model_id}"\nsource = "hf://{repo}"\nmodel_type = "text-to-video"\n'
        for model_id, repo in models.items()
    ]
    path.write_text("\n".join(tables))
    return path


def cli_env(
    tmp_path: Path, *, hub: LocalHub, models: dict[str, str] | None = None, port: int | None = None
) -> dict[str, str]:
    """What a user's shell would hold; ``port=None``: a free port, so no service is found."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDEPOT_", "HF_"))}
    env.update(
        MODELDEPOT_MODELS_DIR=str(tmp_path / "models"),
        MODELDEPOT_DATA_DIR=str(tmp_path / "data"),
        MODELDEPOT_PORT=str(port if port is not None else free_port()),
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf-home"),
    )
    if models is not None:
        env["MODELDEPOT_CATALOG"] = str(write_catalog(tmp_path / "catalog.toml", models))
    return env


def invoke(args: list[str], env: dict[str, str]) -> Result:
    result = CliRunner().invoke(app, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def json_line(result: Result) -> dict[str, Any]:
    """The ``--json`` line: the last line of stdout, and nothing else on stdout."""
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def publish_model(hub: LocalHub, tmp_path: Path) -> tuple[dict[str, bytes | Path], str]:
    """The demo repo plus a 3 MB file, as ``REPO``; returns its files and commit."""
    files: dict[str, bytes | Path] = dict(demo_repo_files("t2v"))
    files["transformer/big.safetensors"] = write_random_file(
        tmp_path / "big.bin", 3 * 1024 * 1024 + 7, seed=5
    )
    return files, hub.create_repo(REPO, files)


def content(source: bytes | Path) -> bytes:
    return source.read_bytes() if isinstance(source, Path) else source


def assert_in_hub_cache(models_dir: Path, commit: str, files: dict[str, bytes | Path]) -> None:
    snapshot = models_dir / "models--acme--tiny-video" / "snapshots" / commit
    for path, source in files.items():
        placed = snapshot / path
        assert placed.is_symlink(), path
        assert placed.read_bytes() == content(source), path
    assert (models_dir / "models--acme--tiny-video" / "refs" / "main").read_text() == commit


# --- in-process ------------------------------------------------------------------------


def test_pull_in_process_downloads_into_the_hub_cache_and_reports_json(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    files, commit = publish_model(local_hub, tmp_path)
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: REPO})

    result = invoke(["pull", MODEL, "--json"], env)

    assert result.exit_code == 0, result.output
    line = json_line(result)
    assert line["event"] == "completed"
    assert line["model_id"] == MODEL
    assert line["status"] == "COMPLETED"
    assert line["download_id"].startswith("dl_")
    assert line["bytes"] == sum(len(content(s)) for s in files.values())
    assert line["error_code"] is None
    assert line["error_message"] is None
    assert 0 < line["seconds"] < 30
    # ISO 8601 UTC, as the API writes timestamps (issue 9).
    assert line["last_byte_at"].endswith("Z")
    assert line["available_at"].endswith("Z")
    last_byte = datetime.fromisoformat(line["last_byte_at"])
    available = datetime.fromisoformat(line["available_at"])
    assert last_byte <= available <= datetime.now(UTC)
    assert_in_hub_cache(tmp_path / "models", commit, files)


def test_pull_shows_a_summary_then_knows_the_model_is_available(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    publish_model(local_hub, tmp_path)
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: REPO})

    first = invoke(["pull", MODEL, "--priority", "high", "--max-retries", "2"], env)
    again = invoke(["pull", MODEL], env)

    assert first.exit_code == 0, first.output
    assert "verified and available" in first.stdout
    assert f"{MODEL}:" in first.stdout
    assert again.exit_code == 0, again.output
    assert "already available" in again.stdout


def test_pull_of_a_file_missing_on_the_cdn_fails_naming_the_problem(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    publish_model(local_hub, tmp_path)
    local_hub.faults.add(Status(404), server="cdn", times=None)
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: REPO})

    result = invoke(["pull", MODEL, "--json"], env)

    assert result.exit_code == 6, result.output  # an UpstreamError
    assert "UPSTREAM_NOT_FOUND" in result.stderr
    assert "does not exist upstream (404)" in result.stderr
    line = json_line(result)
    assert line["event"] == "failed"
    assert line["status"] == "FAILED"
    assert line["error_code"] == "UPSTREAM_NOT_FOUND"
    assert line["download_id"].startswith("dl_")


def test_pull_of_a_gated_model_without_token_says_to_set_hf_token(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    local_hub.create_repo(REPO, demo_repo_files("t2v"), gated=True)
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: REPO})

    result = invoke(["pull", MODEL], env)

    assert result.exit_code == 6, result.output
    assert "gated" in result.stderr
    assert "HF_TOKEN" in result.stderr
    assert not (tmp_path / "models" / "models--acme--tiny-video" / "snapshots").exists()


def test_pull_of_an_unknown_model_exits_with_model_not_found(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: REPO})

    result = invoke(["pull", "no-such-model", "--json"], env)

    assert result.exit_code == 3, result.output  # a NotFound
    assert "MODEL_NOT_FOUND" in result.stderr
    assert "no-such-model" in result.stderr
    line = json_line(result)
    assert line["event"] == "failed"
    assert line["error_code"] == "MODEL_NOT_FOUND"
    assert line["download_id"] is None


def test_pull_of_an_invalid_id_is_refused_before_anything_runs(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: REPO})

    result = invoke(["pull", "../etc"], env)

    assert result.exit_code == 2, result.output  # an InvalidInput
    assert "INVALID_MODEL_ID" in result.stderr
    assert not (tmp_path / "data").exists()


def test_ctrl_c_leaves_the_download_to_resume_at_the_next_pull(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    big = write_random_file(tmp_path / "big.bin", 2_000_000, seed=9)
    files: dict[str, bytes | Path] = {"config.json": b"{}", "model.safetensors": big}
    commit = local_hub.create_repo(REPO, files)
    # 100 kB/s per connection: the 2 MB take at least 5 s over the four segments, and
    # Ctrl-C comes once a quarter is durable (after about 1.3 s).
    local_hub.faults.add(Throttle(bytes_per_second=100_000), server="cdn", method="GET")
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: REPO})
    # Segments of 512 KiB (a file within one segment restarts from 0 after a stop, by
    # design) and frequent checkpoints, so there is a durable one to resume from. A pull
    # that does not stop on Ctrl-C dumps its threads (faulthandler, on SIGABRT).
    env |= {
        "MODELDEPOT_MIN_SEGMENT_MB": "0.5",
        "MODELDEPOT_CHECKPOINT_INTERVAL_SECONDS": "0.05",
        "PYTHONFAULTHANDLER": "1",
    }
    command = [sys.executable, "-m", "modeldepot", "pull", MODEL]

    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As at a terminal: a test run started in the background by a shell without job
        # control inherits SIGINT ignored, and Python then never sees Ctrl-C.
        preexec_fn=_sigint_default,
    )
    try:
        deadline = time.monotonic() + 20
        while checkpointed_bytes(tmp_path / "models") < 500_000:  # a quarter is durable
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            _, stderr = process.communicate(timeout=20)
            raise AssertionError(f"Ctrl-C did not stop the pull:\n{stderr.decode()}") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert b"resume" in stderr

    local_hub.faults.clear()
    local_hub.requests.clear()
    result = invoke(["pull", MODEL, "--json"], env)

    assert result.exit_code == 0, result.output
    assert json_line(result)["status"] == "COMPLETED"
    assert_in_hub_cache(tmp_path / "models", commit, files)
    assert local_hub.requests.bytes_sent(server="cdn") < 2_000_000  # resumed, not restarted


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def checkpointed_bytes(models_dir: Path) -> int:
    """Bytes the partial files' checkpoints record as written (0 before the first)."""
    total = 0
    for checkpoint in models_dir.glob("models--*/blobs/*.modeldepot-partial.json"):
        try:
            plan = json.loads(checkpoint.read_bytes())["plan"]
        except (OSError, ValueError, KeyError):
            continue  # replaced meanwhile: read it next time
        total += sum(done for _start, _end, done in plan["segments"])
    return total


# --- through a running service -----------------------------------------------------------


@pytest.fixture
def service(
    local_hub: LocalHub, make_settings: SettingsFactory, tmp_path: Path
) -> Iterator[LiveServer]:
    settings = make_settings(hf_endpoint=local_hub.endpoint, models_dir=tmp_path / "service-models")
    with live_server(settings, entries=(hub_entry(MODEL, REPO),)) as server:
        yield server


def test_pull_through_the_running_service(
    local_hub: LocalHub, service: LiveServer, tmp_path: Path
) -> None:
    files, commit = publish_model(local_hub, tmp_path)
    # No catalogue and other directories here: only the service knows the model.
    env = cli_env(tmp_path / "client", hub=local_hub, port=service.port)

    result = invoke(["pull", MODEL, "--json"], env)

    assert result.exit_code == 0, result.output
    line = json_line(result)
    assert line["status"] == "COMPLETED"
    progress = httpx.get(f"{service.base_url}/api/v1/models/download/progress/{MODEL}").json()
    assert progress["download_id"] == line["download_id"]
    assert progress["available_at"] == line["available_at"]
    assert line["last_byte_at"] is not None
    assert_in_hub_cache(tmp_path / "service-models", commit, files)
    assert not (tmp_path / "client" / "data").exists()  # nothing ran in-process


def test_pull_joins_the_download_already_running_in_the_service(
    local_hub: LocalHub, service: LiveServer, tmp_path: Path
) -> None:
    publish_model(local_hub, tmp_path)
    local_hub.faults.add(Throttle(bytes_per_second=3_000_000), server="cdn")
    started = httpx.post(
        f"{service.base_url}/api/v1/models/download/manage",
        json={"model_id": MODEL, "action": "start"},
    ).json()
    env = cli_env(tmp_path / "client", hub=local_hub, port=service.port)

    result = invoke(["pull", MODEL], env)

    assert result.exit_code == 0, result.output
    assert f"Joining the download already in progress ({started['download_id']})" in result.stdout
    assert f"(download {started['download_id']})" in result.stdout
    progress = httpx.get(f"{service.base_url}/api/v1/models/download/progress/{MODEL}").json()
    assert progress["download_id"] == started["download_id"]
    assert progress["status"] == "COMPLETED"


def test_pull_through_the_service_maps_its_errors_like_in_process(
    local_hub: LocalHub, service: LiveServer, tmp_path: Path
) -> None:
    env = cli_env(tmp_path / "client", hub=local_hub, port=service.port)

    unknown = invoke(["pull", "no-such-model", "--json"], env)

    assert unknown.exit_code == 3, unknown.output
    assert "MODEL_NOT_FOUND" in unknown.stderr
    assert json_line(unknown)["error_code"] == "MODEL_NOT_FOUND"

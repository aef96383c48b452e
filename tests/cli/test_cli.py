"""The ``modeldepot`` command: a real ``serve --demo`` process, and clear start-up errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from modeldepot.cli.main import app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDEPOT_", "HF_"))}
    env.update(
        MODELDEPOT_DATA_DIR=str(tmp_path / "data"),
        MODELDEPOT_MODELS_DIR=str(tmp_path / "models"),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_ENDPOINT="http://127.0.0.1:9",
    )
    return env


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never came up")


def test_serve_demo_serves_demo_models_from_its_local_hub(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "modeldepot", "serve", "--demo", "--port", str(port)],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", process)
        deadline = time.monotonic() + 20
        while True:
            body = httpx.get(f"{base}/api/v1/models/status/detailed", timeout=5).json()
            models = body["models"]
            if all(m["latest_version"] for m in models.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert set(models) == {"tiny-t2v", "tiny-ti2v", "tiny-i2v"}
    for status in models.values():
        assert status["latest_version"]
        assert status["size_bytes"] > 0
        assert status["availability_status"] == "MISSING"
        assert status["source_error"] is None
    assert process.returncode == 0
    assert (tmp_path / "data" / "demo" / "modeldepot.db").exists()


def test_serve_with_a_bad_catalogue_exits_naming_file_and_entry(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[models]]\nid = "bad id"\nsource = "hf://a/b"\n')
    env = cli_env(tmp_path) | {"MODELDEPOT_CATALOG": str(catalog)}
    result = subprocess.run(
        [sys.executable, "-m", "modeldepot", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4
    assert "CATALOG_ERROR" in result.stderr
    assert str(catalog) in result.stderr
    assert "models[0] (id 'bad id')" in result.stderr


def test_ls_lists_catalogue_models_in_process(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ls"], env=cli_env(tmp_path))
    assert result.exit_code == 0, result.output
    for model_id in ("T2V-A14B", "I2V-A14B", "TI2V-5B"):
        assert model_id in result.output
    assert "MISSING" in result.output

"""Shared fixtures: isolated settings, both database backends, and a running app.

PostgreSQL tests use the real server named by ``MODELDEPOT_TEST_POSTGRES_URL`` (CI sets
it); each test gets its own schema, dropped afterwards. Without the variable they are
skipped locally and fail under CI, so a green CI run always includes PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants as hf_constants

from modeldepot.settings import Settings
from tests.support import SettingsFactory

POSTGRES_URL_ENV = "MODELDEPOT_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _isolated_hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the machine's HF token, cache or offline flag, or our env settings."""
    for name in list(os.environ):
        if name.startswith("MODELDEPOT_") and name != POSTGRES_URL_ENV:
            monkeypatch.delenv(name)
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # huggingface_hub reads HF_HOME at import; point its token file into the test too.
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Settings overrides for a fresh database on each backend."""
    if request.param == "sqlite":
        yield {}
        return
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_URL_ENV} must be set in CI")
        pytest.skip(f"{POSTGRES_URL_ENV} not set")
    schema = f"t_{secrets.token_hex(6)}"
    yield {"database_url": url, "database_schema": schema}
    _drop_schema(url, schema)


def _drop_schema(url: str, schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'drop schema if exists "{schema}" cascade')
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Settings confined to tmp_path; the hub endpoint points nowhere unless overridden."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "models_dir": tmp_path / "models",
            "data_dir": tmp_path / "data",
            "hf_endpoint": "http://127.0.0.1:9",
            "hf_token": None,
            "offline": False,
            "allowed_models_roots": [tmp_path],
            "hub_timeout_seconds": 3,
            "status_cache_ttl_seconds": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make

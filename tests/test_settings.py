"""Settings: MODELDEPOT_* environment, TOML file, and the hub's own variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldepot.errors import ConfigError
from modeldepot.settings import Settings


def test_defaults_follow_huggingface_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = Settings.load()
    assert settings.models_dir == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert Settings.load().models_dir == tmp_path / "cache"
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url.endswith("modeldepot.db")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_environment_and_hub_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELDEPOT_MODELS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("MODELDEPOT_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("MODELDEPOT_DOWNLOADS__MAX_RETRIES", "9")
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local:8080/")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings.load()
    assert settings.models_dir == tmp_path / "m"
    assert settings.downloads.max_retries == 9
    assert settings.hf_endpoint == "http://mirror.local:8080"
    assert settings.hf_token is not None
    assert settings.hf_token.get_secret_value() == "hf_secret"
    assert "hf_secret" not in repr(settings)
    assert settings.offline is True


def test_token_file_written_by_hf_login_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    token_path = Path(constants.HF_TOKEN_PATH)
    token_path.parent.mkdir(parents=True, exist_ok=True)
    token_path.write_text("hf_from_file")
    settings = Settings.load()
    assert settings.hf_token is not None
    assert settings.hf_token.get_secret_value() == "hf_from_file"


def test_toml_config_file_below_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "modeldepot.toml"
    path.write_text('port = 9001\nhost = "0.0.0.0"\n[downloads]\nmax_retries = 4\n')
    settings = Settings.load(config_file=path)
    assert (settings.port, settings.host, settings.downloads.max_retries) == (9001, "0.0.0.0", 4)
    monkeypatch.setenv("MODELDEPOT_PORT", "9002")
    assert Settings.load(config_file=path).port == 9002
    monkeypatch.delenv("MODELDEPOT_PORT")
    assert Settings.load().port == 8000  # the file applied only to that build


@pytest.mark.parametrize(
    "text", ["port = 'eighty'", "unknown_key = 1", "[downloads]\nmax_retries = -1", "port = "]
)
def test_bad_config_file_is_a_config_error(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        Settings.load(config_file=path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(config_file=tmp_path / "absent.toml")

"""Settings: MODELDEPOT_* environment, TOML file, and the hub's own variables; every
number within a documented range, refused at start-up with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modeldepot.errors import ConfigError
from modeldepot.settings import Settings
from tests.cli.test_cli import cli_env
from tests.support import SettingsFactory, run_app


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


# --- every numeric setting has a range (issue 8, RELIABILITY.md 42) ---------------------------

# Values just outside each documented range, plus absurd and non-finite ones, as the
# environment would give them. Tests rely on the low ends: min_segment_mb 0.25,
# checkpoint_interval_seconds 0.05, stall_timeout_seconds 0.3, retry delays 0.01/0.05,
# max_retry_after_seconds 0, status_cache_ttl_seconds 0, max_storage_gb 0.002.
OUT_OF_RANGE: dict[str, list[str]] = {
    "port": ["-1", "65536"],
    "hub_timeout_seconds": ["0", "0.05", "121", "nan"],
    "hub_refresh_interval_minutes": ["0", "0.5", "525601", "1e300"],
    "hub_resolve_concurrency": ["0", "65"],
    "status_cache_ttl_seconds": ["-1", "3601", "inf"],
    "status_scan_interval_seconds": ["0", "1e-300", "86401"],
    "min_segment_mb": ["0", "0.05", "33", "1e300"],
    "stall_timeout_seconds": ["0", "0.05", "3601"],
    "checkpoint_interval_seconds": ["0", "1e-300", "601"],
    "retry_base_delay_seconds": ["-1", "3601"],
    "retry_max_delay_seconds": ["-1", "86401"],
    "max_retry_after_seconds": ["-1", "86401", "-inf"],
    "health_check_concurrency": ["0", "33"],
    "health_perf_read_mb": ["0", "0.5", "10001"],
    "storage.max_storage_gb": ["1e-300", "1000001", "1e300"],
    "storage.cleanup_threshold_percent": ["0", "101"],
    "storage.min_free_space_gb": ["-1", "1e308"],
    "storage.revision_grace_hours": ["-1", "8761"],
    "storage.cleanup_check_interval_minutes": ["0", "525601"],
    "usage_retention_days": ["0", "3651", "1.5"],
    "queue_claim_timeout_minutes": ["0", "0.05", "10081"],
    "downloads.max_concurrent_downloads": ["0", "65"],
    "downloads.max_retries": ["-1", "101"],
    "downloads.bandwidth_limit_mbps": ["1e-300", "-1", "100001", "nan"],
    "downloads.connections_per_file": ["0", "65"],
    "downloads.max_connections": ["0", "257"],
    "health_monitoring.check_interval_hours": ["0", "8761"],
    "health_monitoring.full_check_interval_hours": ["1e-300", "1e300"],
    "max_request_body_mb": ["0", "1e-300", "1001"],
    "request_header_timeout_seconds": ["0", "0.05", "601"],
    "request_body_timeout_seconds": ["0", "0.05", "3601"],
    "rate_limits.default_per_minute": ["0", "-1", "100001"],
    "rate_limits.downloads_per_minute": ["0", "100001", "1e300"],
    "rate_limits.admin_per_minute": ["0", "100001"],
}


def env_name(setting: str) -> str:
    return "MODELDEPOT_" + setting.replace(".", "__").upper()


def numeric_settings() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        if field.annotation in (int, float):
            names.add(name)
        elif hasattr(field.annotation, "model_fields"):
            section = field.annotation.model_fields  # type: ignore[union-attr]
            names |= {f"{name}.{key}" for key, f in section.items() if f.annotation in (int, float)}
    return names


def test_the_table_covers_every_numeric_setting() -> None:
    assert numeric_settings() == set(OUT_OF_RANGE)


def test_every_numeric_setting_documents_its_range() -> None:
    schema = Settings.model_json_schema()
    for setting in OUT_OF_RANGE:
        *section, name = setting.split(".")
        properties = schema["properties"]
        if section:
            ref = properties[section[0]]["$ref"].rsplit("/", 1)[1]
            properties = schema["$defs"][ref]["properties"]
        field = properties[name]
        assert {"minimum", "maximum", "description"} <= set(field), (setting, field)


@pytest.mark.parametrize(
    ("setting", "value"),
    [(setting, value) for setting, values in OUT_OF_RANGE.items() for value in values],
)
def test_out_of_range_settings_stop_start_up_with_one_line_naming_them(
    setting: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_name(setting), value)
    with pytest.raises(ConfigError) as info:
        Settings.load()
    message = info.value.message
    assert "\n" not in message
    assert f"{setting} ({env_name(setting)})" in message


def test_out_of_range_values_in_the_config_file_are_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "modeldepot.toml"
    path.write_text("min_segment_mb = nan\n[storage]\nmax_storage_gb = 1e300\n")
    with pytest.raises(ConfigError) as info:
        Settings.load(config_file=path)
    assert str(path) in info.value.message
    assert "min_segment_mb" in info.value.message
    assert "storage.max_storage_gb" in info.value.message
    assert info.value.details["settings"] == ["min_segment_mb", "storage.max_storage_gb"]


def test_values_tests_and_users_rely_on_are_accepted(tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "min_segment_mb": 0.25,
        "checkpoint_interval_seconds": 0.05,
        "stall_timeout_seconds": 0.3,
        "retry_base_delay_seconds": 0.01,
        "retry_max_delay_seconds": 0.05,
        "max_retry_after_seconds": 0,
        "status_cache_ttl_seconds": 0,
        "port": 0,
        "storage": {"max_storage_gb": 0.002, "min_free_space_gb": 0, "revision_grace_hours": 0},
        "downloads": {"bandwidth_limit_mbps": 0, "max_retries": 0},
    }
    settings = Settings.load(**values)
    assert settings.min_segment_mb == 0.25
    assert settings.storage.max_storage_gb == 0.002


def test_serve_with_an_out_of_range_setting_prints_one_line_and_exits(tmp_path: Path) -> None:
    env = cli_env(tmp_path) | {"MODELDEPOT_STORAGE__MAX_STORAGE_GB": "1e300"}
    result = subprocess.run(
        [sys.executable, "-m", "modeldepot", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 4  # ConfigError in EXIT_CODES
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error CONFIG_ERROR: Invalid setting: storage.max_storage_gb")
    assert "MODELDEPOT_STORAGE__MAX_STORAGE_GB" in lines[0]


# --- a models directory named by the environment, the TOML file or the CLI ---------------------


async def test_a_models_directory_that_is_a_file_is_a_config_error_naming_it(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    for path in (tmp_path / "a-file", tmp_path / "a-file" / "models"):
        with pytest.raises(ConfigError) as info:
            async with run_app(make_settings(models_dir=path), resolve=False):
                pass
        assert str(path) in info.value.message


def test_serve_on_a_models_directory_that_is_a_file_prints_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    env = cli_env(tmp_path) | {"MODELDEPOT_MODELS_DIR": str(tmp_path / "a-file")}
    result = subprocess.run(
        [sys.executable, "-m", "modeldepot", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 4
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error ")]
    assert errors == [
        f"error CONFIG_ERROR: Models directory {tmp_path / 'a-file'} exists and is not a directory"
    ]

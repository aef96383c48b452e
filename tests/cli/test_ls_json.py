"""``modeldepot ls --json``: every model's status and the summary in the API's shape, the
same from a running service as in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modeldepot.testing import LocalHub, demo_repo_files
from tests.cli.api_support import MODEL, OTHER, Cli
from tests.cli.test_pull import cli_env, invoke


def ls_json(env: dict[str, str]) -> dict[str, Any]:
    result = invoke(["ls", "--json"], env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def test_ls_json_through_the_service_is_the_apis_status_of_every_model(cli: Cli) -> None:
    cli.install(MODEL)

    listed = ls_json(cli.env)

    api = cli.api("GET", "/models/status/detailed?limit=100")
    assert listed == {"models": api["models"], "summary": api["summary"]}
    assert listed["summary"]["available_models"] == 1
    assert list(listed["models"]) == [OTHER, MODEL]


def test_ls_json_in_process_has_the_same_shape(local_hub: LocalHub, tmp_path: Path) -> None:
    local_hub.create_repo("acme/tiny", demo_repo_files("t2v"))
    env = cli_env(tmp_path, hub=local_hub, models={MODEL: "acme/tiny"})

    result = invoke(["ls", "--json"], env)

    assert result.exit_code == 0, result.output
    assert "working in this process" in result.stderr  # said on stderr, not stdout
    listed = json.loads(result.stdout)
    assert set(listed) == {"models", "summary"}
    assert listed["models"][MODEL]["availability_status"] == "MISSING"
    assert listed["models"][MODEL]["size_bytes"] > 0
    assert listed["summary"]["total_models"] == len(listed["models"]) == 4  # and 3 built-in

"""The command line as a user runs it against a running service (the ``cli`` fixture of
``tests/cli/conftest.py``), the service's own API to compare with, and table readers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from typer.testing import Result

from modeldepot.testing import LocalHub
from tests.cli.test_pull import invoke
from tests.live_server import LiveServer

MODEL, REPO = "tiny", "acme/tiny"
OTHER, OTHER_REPO = "other", "acme/other"
API = "/api/v1"
WIDE = {"COLUMNS": "200"}  # no wrapping in tables: one row per line


@dataclass
class Cli:
    """The command line pointed at ``server``, and the server's API for comparison."""

    server: LiveServer
    hub: LocalHub
    env: dict[str, str]
    models_dir: Path

    def __call__(self, *args: str) -> Result:
        return invoke(list(args), self.env)

    def json(self, *args: str) -> Any:
        """``args --json``: exit 0 and exactly one JSON line on stdout."""
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) == 1, result.stdout
        return json.loads(lines[0])

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The API's own answer (JSON) to the same question."""
        response = httpx.request(method, f"{self.server.base_url}{API}{path}", json=body)
        assert response.is_success, response.text
        return response.json() if response.content else None

    def start(self, model_id: str, **fields: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.api(
            "POST", "/models/download/manage", {"model_id": model_id, "action": "start", **fields}
        )
        return answer

    def settle(self) -> None:
        """Every download, and the health checks they queue, done."""
        self.server.call(lambda services: services.downloads.run_until_idle(), timeout=30)
        self.server.call(lambda services: services.health.run_until_idle(), timeout=30)

    def install(self, model_id: str) -> None:
        self.start(model_id)
        self.settle()
        status = self.api("GET", f"/models/status/detailed/{model_id}")
        assert status["availability_status"] == "AVAILABLE", status


def row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with ``first_cell``."""
    for text in output.splitlines():
        cells = [cell.strip() for cell in text.split("│")[1:-1]]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row for {first_cell} in:\n{output}")


def field(output: str, name: str) -> str:
    """The value of a ``name  value`` line."""
    for text in output.splitlines():
        key, _, value = text.strip().partition(" ")
        if key == name:
            return value.strip()
    raise AssertionError(f"no {name} line in:\n{output}")

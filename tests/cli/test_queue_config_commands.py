"""The wait queue and the live configuration from the command line against the real
service, and what every API command does when no service answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldepot.testing import LocalHub
from tests.cli.api_support import MODEL, WIDE, Cli, field, row
from tests.cli.test_pull import cli_env, invoke


def test_queue_entries_are_added_listed_claimed_once_and_cancelled(cli: Cli) -> None:
    cli.install(MODEL)

    added = cli.json("queue", "add", MODEL, "a cat", "--param", "steps=4", "--param", "seed=7")
    queue_id = added["queue_id"]
    listed = cli("queue", "list", "--status", "READY")
    shown = cli("queue", "show", queue_id)
    claimed = cli.json("queue", "claim", queue_id, "--worker", "w1")
    claimed_again = cli("queue", "claim", queue_id)
    by_id = cli.json("show", queue_id)
    second = cli("queue", "add", MODEL, "a dog", "--priority", "high")
    second_id = second.stdout.split()[1].rstrip(":")
    cancelled = cli.json("queue", "cancel", second_id)
    bad_param = cli("queue", "add", MODEL, "x", "--param", "steps")

    assert added["status"] == "READY"  # the model is available: ready at once
    assert listed.exit_code == 0, listed.output
    assert row(listed.stdout, queue_id)[1:3] == [MODEL, "READY"]
    assert shown.exit_code == 0, shown.output
    assert (
        field(shown.stdout, "request")
        == '{"prompt": "a cat", "parameters": {"steps": 4, "seed": 7}}'
    )
    assert claimed["status"] == "CLAIMED"
    assert claimed_again.exit_code == 10, claimed_again.output  # 409: a Conflict
    assert "QUEUE_ENTRY_NOT_READY" in claimed_again.stderr
    assert by_id == cli.api("GET", f"/models/fallback/queue/{queue_id}")
    assert second.exit_code == 0, second.output
    assert second_id.startswith("queue_")
    assert cancelled["status"] == "CANCELLED"
    assert bad_param.exit_code == 2, bad_param.output
    assert "Expected KEY=VALUE" in bad_param.stderr


def test_config_show_and_set_change_the_running_service(cli: Cli) -> None:
    before = cli.api("GET", "/config/current")
    shown = cli.json("config", "show")
    table = cli("config", "show")
    changed = cli(
        "config", "set", "downloads.max_concurrent_downloads=5", "rate_limits.enabled=false"
    )
    as_string = cli("config", "set", 'downloads.max_concurrent_downloads="6"')
    unknown_key = cli("config", "set", "downloads.no_such_key=1")
    twice = cli("config", "set", "downloads.max_retries=1", "downloads=2")
    unchanged = cli.json("config", "set", "downloads.max_concurrent_downloads=5")
    after = cli.api("GET", "/config/current")

    assert shown == before
    assert table.exit_code == 0, table.output
    assert row(table.stdout, "downloads.max_concurrent_downloads")[1] == str(
        shown["downloads"]["max_concurrent_downloads"]
    )
    assert changed.exit_code == 0, changed.output
    assert "Updated downloads.max_concurrent_downloads." in changed.stdout
    assert "Updated rate_limits.enabled." in changed.stdout
    assert as_string.exit_code == 2, as_string.output  # 422: "6" is no number
    assert "downloads.max_concurrent_downloads" in as_string.stderr
    assert unknown_key.exit_code == 2, unknown_key.output
    assert twice.exit_code == 2, twice.output  # refused before anything is sent
    assert "given twice" in twice.stderr
    assert unchanged["updated_settings"] == []
    assert after["downloads"]["max_concurrent_downloads"] == 5
    assert after["rate_limits"]["enabled"] is False


API_COMMANDS = [
    ["status"],
    ["status", MODEL],
    ["progress"],
    ["pause", MODEL],
    ["priority", MODEL, "high"],
    ["check", MODEL],
    ["repair", MODEL],
    ["update", MODEL],
    ["rollback", MODEL],
    ["storage"],
    ["cleanup", "--dry-run"],
    ["pin", MODEL],
    ["analytics"],
    ["suggest", MODEL],
    ["queue", "list"],
    ["config", "show"],
    ["config", "set", "downloads.max_retries=2"],
]


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_without_a_service_every_api_command_says_to_start_one(
    local_hub: LocalHub, tmp_path: Path, as_json: bool
) -> None:
    env = cli_env(tmp_path, hub=local_hub) | WIDE  # a free port: nothing listens there
    port = env["MODELDEPOT_PORT"]

    results = {
        " ".join(args): invoke([*args, *(["--json"] if as_json else [])], env)
        for args in API_COMMANDS
    }

    for command, result in results.items():
        assert result.exit_code == 8, (command, result.output)
        assert result.stdout == "", command
        assert "SERVICE_UNREACHABLE" in result.stderr, command
        assert f"No modeldepot service answers at http://127.0.0.1:{port}" in result.stderr
        assert "`modeldepot serve`" in result.stderr, command
    assert not (tmp_path / "data").exists()  # nothing ran in-process

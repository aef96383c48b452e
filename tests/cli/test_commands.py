"""The commands over one model's life against the real service: status, downloads, health,
revisions and records by id, as people read them and as ``--json`` prints them (exactly
the API's answer), with their exit codes."""

from __future__ import annotations

from pathlib import Path

from tests.cli.api_support import MODEL, OTHER, REPO, Cli, field, row


def test_status_shows_one_model_or_every_model_and_json_is_the_apis_answer(cli: Cli) -> None:
    cli.install(MODEL)

    one = cli("status", MODEL)
    listing = cli("status")
    one_json = cli.json("status", MODEL)
    listing_json = cli.json("status", "--limit", "1", "--page", "2")

    assert one.exit_code == 0, one.output
    assert field(one.stdout, "availability_status") == "AVAILABLE"
    assert field(one.stdout, "current_version") == one_json["current_version"]
    assert listing.exit_code == 0, listing.output
    assert row(listing.stdout, MODEL)[1] == "AVAILABLE"
    assert row(listing.stdout, OTHER)[1] == "MISSING"
    assert "2 models: 1 available, 0 downloading, 0 corrupted" in listing.stdout
    assert one_json == cli.api("GET", f"/models/status/detailed/{MODEL}")
    assert listing_json == cli.api("GET", "/models/status/detailed?limit=1&page=2")
    assert list(listing_json["models"]) == [MODEL]  # in id order: other, then tiny


def test_a_download_is_followed_paused_resumed_reprioritised_tuned_and_cancelled(
    cli: Cli,
) -> None:
    started = cli.start(OTHER, bandwidth_limit_mbps=0.02)  # ~15 s: it stays active meanwhile

    progress = cli("progress", OTHER)
    active = cli.json("progress")
    priority = cli.json("priority", OTHER, "high")
    tuned = cli.json("tune", OTHER, "--bandwidth-limit", "0.01", "--max-retries", "5")
    after_tune = cli.api("GET", f"/models/download/progress/{OTHER}")
    paused = cli("pause", OTHER)
    paused_again = cli.json("pause", OTHER)
    resumed = cli.json("resume", OTHER)
    cancelled = cli("cancel", OTHER)
    nothing_to_pause = cli("pause", OTHER, "--json")

    assert progress.exit_code == 0, progress.output
    assert field(progress.stdout, "download_id") == started["download_id"]
    assert field(progress.stdout, "status") in ("QUEUED", "DOWNLOADING")
    assert [d["model_id"] for d in active["active_downloads"]] == [OTHER]
    assert active["pagination"]["total"] == 1
    assert priority["success"] is True
    assert tuned["download_id"] == started["download_id"]
    assert (after_tune["priority"], after_tune["bandwidth_limit_mbps"]) == ("high", 0.01)
    assert after_tune["max_retries"] == 5
    assert paused.exit_code == 0, paused.output
    assert field(paused.stdout, "status") == "PAUSED"
    assert paused_again["new_status"] == "PAUSED"  # a second pause changes nothing, says so
    assert resumed["new_status"] in ("QUEUED", "DOWNLOADING")
    assert cancelled.exit_code == 0, cancelled.output
    assert field(cancelled.stdout, "status") == "CANCELLED"
    assert nothing_to_pause.exit_code == 3, nothing_to_pause.output  # 404: a NotFound
    assert "DOWNLOAD_NOT_FOUND" in nothing_to_pause.stderr
    assert nothing_to_pause.stdout == ""


def corrupt_one_file(models_dir: Path) -> None:
    """Flip bytes of the largest blob, keeping its size (only hashing can tell)."""
    blobs = (models_dir / f"models--{REPO.replace('/', '--')}" / "blobs").iterdir()
    largest = max(blobs, key=lambda path: path.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[-100:] = bytes(255 - b for b in data[-100:])
    largest.chmod(0o644)
    largest.write_bytes(bytes(data))


def test_check_finds_corruption_repair_mends_it_and_show_reads_both_records(cli: Cli) -> None:
    cli.install(MODEL)

    healthy = cli("check", MODEL, "--type", "full", "--wait")
    started = cli.json("check", MODEL)
    corrupt_one_file(cli.models_dir)
    corrupted = cli.json("check", MODEL, "--type", "full", "--wait")
    health = cli("health", MODEL)
    repair = cli.json("repair", MODEL)
    cli.settle()
    repaired = cli.json("show", repair["repair_id"])
    check_record = cli.json("show", started["check_id"])
    after = cli.json("health")

    assert healthy.exit_code == 0, healthy.output
    assert field(healthy.stdout, "overall_health") == "healthy"
    assert field(healthy.stdout, "check_type") == "full"
    assert started["check_id"].startswith("check_")
    assert corrupted["overall_health"] == "corrupted"
    assert corrupted["status"] == "completed"
    assert [issue["kind"] for issue in corrupted["issues"]] == ["wrong_hash"]
    assert health.exit_code == 0, health.output
    assert row(health.stdout, MODEL)[1] == "corrupted"
    assert repair["repair_id"].startswith("repair_")
    assert repaired == cli.api("GET", f"/models/health/repairs/{repair['repair_id']}")
    assert repaired["model_id"] == MODEL
    assert check_record["check_id"] == started["check_id"]
    assert check_record["check_type"] == "integrity"  # --type quick is the API's integrity
    assert after["models"][MODEL]["overall_health"] == "healthy"


def test_update_switches_to_the_new_commit_and_rollback_goes_back(cli: Cli) -> None:
    cli.install(MODEL)
    first = cli.api("GET", f"/models/status/detailed/{MODEL}")["current_version"]
    nothing_kept = cli("rollback", MODEL)
    second = cli.hub.commit(REPO, add={"config.json": b'{"version": 2}'})

    listed = cli("revisions", MODEL, "--refresh")
    updated = cli.json("update", MODEL)
    cli.settle()
    rolled_back = cli("rollback", MODEL)
    revisions = cli.json("revisions", MODEL)
    not_installed = cli("update", OTHER)

    assert nothing_kept.exit_code == 10, nothing_kept.output  # 409: a Conflict
    assert "REVISION_UNAVAILABLE" in nothing_kept.stderr
    assert listed.exit_code == 0, listed.output
    assert field(listed.stdout, "update_available") == "yes"
    assert field(listed.stdout, "latest_version") == second
    assert (updated["from_version"], updated["to_version"]) == (first, second)
    assert rolled_back.exit_code == 0, rolled_back.output
    assert field(rolled_back.stdout, "to_version") == first
    states = {r["commit"]: r["state"] for r in revisions["revisions"]}
    assert states == {first: "current", second: "previous"}
    assert not_installed.exit_code == 10, not_installed.output
    assert "MODEL_NOT_INSTALLED" in not_installed.stderr


def test_errors_of_the_service_map_to_exit_codes_with_nothing_on_stdout(cli: Cli) -> None:
    unknown = cli("status", "ghost", "--json")
    invalid = cli("status", "bad id", "--json")
    not_an_id = cli("show", "check_nope")

    assert unknown.exit_code == 3, unknown.output  # 404
    assert "MODEL_NOT_FOUND" in unknown.stderr
    assert invalid.exit_code == 2, invalid.output  # 422
    assert "INVALID_MODEL_ID" in invalid.stderr
    assert not_an_id.exit_code == 2, not_an_id.output  # refused before asking
    assert "VALIDATION_ERROR" in not_an_id.stderr
    for result in (unknown, invalid, not_an_id):
        assert result.stdout == ""

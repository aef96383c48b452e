"""Storage, cleanup, pins, analytics and fallback suggestions from the command line against
the real service: what people read, and ``--json`` exactly as the API answers."""

from __future__ import annotations

from typing import Any

from tests.cli.api_support import MODEL, OTHER, Cli, field, row


def without_free_space(storage: dict[str, Any]) -> dict[str, Any]:
    free = ("total_capacity", "available_space", "disk_free", "usage_percent")
    summary = {
        key: value for key, value in storage["storage_summary"].items() if not key.startswith(free)
    }
    return storage | {"storage_summary": summary}


def test_storage_pins_and_cleanup_protect_a_pinned_model_then_remove_it(cli: Cli) -> None:
    cli.install(MODEL)

    storage = cli("storage")
    storage_json = cli.json("storage")
    storage_api = cli.api("GET", "/models/storage?page=1&limit=100")
    pinned = cli("pin", MODEL, "--reason", "for demos")
    pins = cli.json("pins")
    kept = cli.json("cleanup", "--models", MODEL, "--dry-run")
    unpinned = cli("unpin", MODEL, "--json")
    candidates = cli.json("cleanup-candidates", "--min-unused-days", "0")
    dry_run = cli("cleanup", "--models", f"{MODEL},{OTHER}", "--dry-run")
    still_there = cli.api("GET", f"/models/status/detailed/{MODEL}")
    removed = cli("cleanup", "--models", MODEL)
    gone = cli.api("GET", f"/models/status/detailed/{MODEL}")

    assert storage.exit_code == 0, storage.output
    assert row(storage.stdout, MODEL)[5] == "no"  # not pinned
    assert field(storage.stdout, "models_count") == "1"
    # The API's answer, but for the disk's free space (anything on the machine moves it).
    assert without_free_space(storage_json) == without_free_space(storage_api)
    assert storage_json["models_storage"][0]["model_id"] == MODEL
    assert pinned.exit_code == 0, pinned.output
    assert pinned.stdout.strip() == f"Pinned {MODEL} (for demos)."
    assert [(p["model_id"], p["reason"]) for p in pins["pins"]] == [(MODEL, "for demos")]
    assert kept["dry_run"] is True
    assert (kept["models_removed"], kept["models_preserved"]) == ([], [MODEL])
    assert (unpinned.exit_code, unpinned.stdout) == (0, "")  # 204: no body to print
    assert [r["model_id"] for r in candidates["recommendations"]] == [MODEL]
    assert dry_run.exit_code == 0, dry_run.output
    assert f"Would remove {MODEL}:" in dry_run.stdout
    assert row(dry_run.stdout, OTHER)[1] == "absent"
    assert still_there["availability_status"] == "AVAILABLE"
    assert removed.exit_code == 0, removed.output
    assert f"Removed {MODEL}:" in removed.stdout
    assert gone["availability_status"] == "MISSING"


def test_analytics_performance_and_suggest_read_the_services_usage(cli: Cli) -> None:
    cli.install(MODEL)
    generation = {"model_id": MODEL, "type": "generation_completed", "duration_seconds": 12.5}
    cli.api("POST", "/models/usage", {"events": [{"event_id": "e1", **generation}]})

    everything = cli("analytics", "--period", "week")
    one = cli.json("analytics", MODEL, "--from", "2020-01-01")
    performance = cli.json("performance")
    suggested = cli("suggest", OTHER)
    suggested_json = cli.json("suggest", OTHER, "--quality", "low", "--prefer-smaller")
    bad_date = cli("analytics", "--from", "yesterday")

    assert everything.exit_code == 0, everything.output
    assert row(everything.stdout, MODEL)[1:2] == ["1"]
    assert row(everything.stdout, OTHER)[1:2] == ["0"]
    assert "1 generations on 1 models; most used tiny." in everything.stdout
    assert list(one["models"]) == [MODEL]
    assert one["models"][MODEL]["average_generation_time"] == 12.5
    assert one["range"]["start_date"] == "2020-01-01"
    assert set(performance["performance_trends"]) == {MODEL, OTHER}
    assert suggested.exit_code == 0, suggested.output
    assert row(suggested.stdout, MODEL)[2] == "AVAILABLE"
    assert "Recommended:" in suggested.stdout
    assert suggested_json["suggestions"][0]["suggested_model"] == MODEL
    assert suggested_json["requested_model_status"] == "MISSING"
    assert bad_date.exit_code == 2, bad_date.output  # typer's own usage error

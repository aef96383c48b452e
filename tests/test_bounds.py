"""Shared bounds: "0 or at least x" and the request fields that use the settings' ranges."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ValidationError

from modeldepot.bounds import ZeroOrBetween
from tests.support import SettingsFactory, run_app


class Limited(BaseModel):
    rate: Annotated[float, ZeroOrBetween(low=0.5, high=10, zero_means="none")] = 0


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 3, 10])
def test_zero_or_a_value_in_range_is_accepted(value: float) -> None:
    assert Limited(rate=value).rate == value


@pytest.mark.parametrize("value", [1e-300, 0.49, 10.01, 1e300, -1, -1e-300])
def test_anything_else_is_refused_saying_what_is_allowed(value: float) -> None:
    with pytest.raises(ValidationError, match=r"must be 0 \(none\) or between 0.5 and 10"):
        Limited(rate=value)


def test_the_json_schema_states_the_gap() -> None:
    field = Limited.model_json_schema()["properties"]["rate"]
    assert field["minimum"] == 0
    assert field["maximum"] == 10
    assert field["not"] == {"exclusiveMinimum": 0, "exclusiveMaximum": 0.5}


# --- request fields: the same ranges as the settings ---------------------------------------

BAD_LIMITS: list[Any] = [1e-300, 0.005, -1, 100_001, 1e300, math.nan, math.inf]
BAD_RETRIES: list[Any] = [-1, 101, 10**30, 2.5]


async def post_json(app: Any, url: str, body: dict[str, Any]) -> Any:
    # json.dumps, not httpx's json=: Python's JSON writes NaN and Infinity, as a client may.
    return await app.client.post(
        url, content=json.dumps(body), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("bandwidth_limit_mbps", v) for v in BAD_LIMITS] + [("max_retries", v) for v in BAD_RETRIES],
)
async def test_manage_and_update_requests_outside_the_range_are_422_naming_the_field(
    field: str, value: Any, make_settings: SettingsFactory
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        manage = await post_json(
            app,
            "/api/v1/models/download/manage",
            {"model_id": "TI2V-5B", "action": "update", field: value},
        )
        update = await post_json(app, "/api/v1/models/revisions/TI2V-5B/update", {field: value})
    for response in (manage, update):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert [e["field"] for e in error["details"]["errors"]] == [f"body.{field}"]


def test_request_schemas_publish_the_ranges() -> None:
    from modeldepot.downloads.schemas import ManageRequest
    from modeldepot.revisions.schemas import UpdateRequest

    for model in (ManageRequest, UpdateRequest):
        properties = model.model_json_schema()["properties"]
        for field in ("bandwidth_limit_mbps", "max_retries"):
            (bounded,) = [o for o in properties[field]["anyOf"] if o.get("type") != "null"]
            assert {"minimum", "maximum"} <= set(bounded), (model, field)


def test_pull_options_outside_the_range_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from modeldepot.cli.main import app

    monkeypatch.setenv("MODELDEPOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELDEPOT_MODELS_DIR", str(tmp_path / "models"))
    result = CliRunner().invoke(app, ["pull", "TI2V-5B", "--bandwidth-limit", "0.001"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error VALIDATION_ERROR: bandwidth_limit_mbps: must be 0 (unlimited) or between "
        "0.01 and 100,000"
    ]
    assert not (tmp_path / "data").exists()

"""``/config``: the runtime configuration and its live updates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from modeldepot.api.deps import ConfigDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX
from modeldepot.config.schemas import ConfigPublic, ConfigUpdateResult

router = APIRouter(prefix=f"{API_PREFIX}/config", tags=["config"])


@router.get("/current", response_model=ConfigPublic, responses=error_responses())
async def current_config(config: ConfigDep) -> ConfigPublic:
    """The configuration in effect."""
    return config.current


@router.put(
    "/update",
    response_model=ConfigUpdateResult,
    responses=error_responses(400, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ConfigUpdate"}}
            },
        }
    },
)
async def update_config(
    config: ConfigDep,
    # Parsed as plain JSON and validated strictly by the service (no "5" for 5); the
    # documented schema is ConfigUpdate's.
    body: Annotated[Any, Body(include_in_schema=False)],
) -> ConfigUpdateResult:
    """Change part of the configuration; persisted atomically and applied at once."""
    return await config.update(body)

"""Service endpoints outside ``/api/v1``: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from modeldepot import __version__
from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.metrics import render
from modeldepot.config.schemas import SetAside

router = APIRouter(tags=["system"])


class Healthz(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded while the models directory refuses writes"
    )
    version: str
    models_directory: str
    models_directory_writable: bool = Field(
        description="Checked now (a probe file is created and removed, at most once a second)"
    )
    models_directory_problem: str | None = Field(
        default=None, description="Why it refuses writes (read-only file system, ...)"
    )
    catalog_models: int
    config_set_aside: SetAside | None = Field(
        default=None,
        description="A saved runtime configuration that no longer validated at start-up, "
        "and where it was moved",
    )


@router.get("/healthz", response_model=Healthz, responses=error_responses())
async def healthz(services: ServicesDep) -> Healthz:
    """Liveness and the few facts an operator checks first."""
    problem = await services.models_dir_probe.problem()
    return Healthz(
        status="ok" if problem is None else "degraded",
        version=__version__,
        models_directory=str(services.models_dir),
        models_directory_writable=problem is None,
        models_directory_problem=problem,
        catalog_models=len(services.catalog.entries),
        config_set_aside=services.config.set_aside,
    )


@router.get("/metrics", response_class=Response, responses=error_responses())
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics of this process."""
    body, content_type = render(services)
    return Response(content=body, media_type=content_type)

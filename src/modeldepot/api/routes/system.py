"""Service endpoints outside ``/api/v1``: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

from modeldepot import __version__
from modeldepot.api.deps import ServicesDep
from modeldepot.api.metrics import render

router = APIRouter(tags=["system"])


class Healthz(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    models_directory: str
    models_directory_writable: bool
    catalog_models: int


@router.get("/healthz", response_model=Healthz)
async def healthz(services: ServicesDep) -> Healthz:
    """Liveness and the few facts an operator checks first."""
    return Healthz(
        status="ok" if services.models_dir_writable else "degraded",
        version=__version__,
        models_directory=str(services.models_dir),
        models_directory_writable=services.models_dir_writable,
        catalog_models=len(services.catalog.entries),
    )


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics of this process."""
    body, content_type = render(services)
    return Response(content=body, media_type=content_type)

"""Typed dependencies: routes receive services from the app's composition root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from modeldepot.availability.service import AvailabilityService
from modeldepot.catalog.service import CatalogService
from modeldepot.config.service import ConfigService
from modeldepot.downloads.service import DownloadService
from modeldepot.health.repair import RepairService
from modeldepot.health.service import HealthService
from modeldepot.revisions.service import RevisionService
from modeldepot.services import Services

# Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency on a worker
# thread, a thread hop per request for a dictionary lookup (issue 9).


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return _services(request)


async def _availability(request: Request) -> AvailabilityService:
    return _services(request).availability


async def _catalog(request: Request) -> CatalogService:
    return _services(request).catalog


async def _config(request: Request) -> ConfigService:
    return _services(request).config


async def _downloads(request: Request) -> DownloadService:
    return _services(request).downloads


async def _health(request: Request) -> HealthService:
    return _services(request).health


ServicesDep = Annotated[Services, Depends(get_services)]
AvailabilityDep = Annotated[AvailabilityService, Depends(_availability)]
CatalogDep = Annotated[CatalogService, Depends(_catalog)]
ConfigDep = Annotated[ConfigService, Depends(_config)]
DownloadsDep = Annotated[DownloadService, Depends(_downloads)]
HealthDep = Annotated[HealthService, Depends(_health)]


async def _repairs(request: Request) -> RepairService:
    return _services(request).repairs


RepairsDep = Annotated[RepairService, Depends(_repairs)]


async def _revisions(request: Request) -> RevisionService:
    return _services(request).revisions


RevisionsDep = Annotated[RevisionService, Depends(_revisions)]

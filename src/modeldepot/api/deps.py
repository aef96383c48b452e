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
from modeldepot.store.service import StorageService


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _availability(request: Request) -> AvailabilityService:
    return get_services(request).availability


def _catalog(request: Request) -> CatalogService:
    return get_services(request).catalog


def _config(request: Request) -> ConfigService:
    return get_services(request).config


def _downloads(request: Request) -> DownloadService:
    return get_services(request).downloads


def _health(request: Request) -> HealthService:
    return get_services(request).health


def _storage(request: Request) -> StorageService:
    return get_services(request).storage


ServicesDep = Annotated[Services, Depends(get_services)]
AvailabilityDep = Annotated[AvailabilityService, Depends(_availability)]
CatalogDep = Annotated[CatalogService, Depends(_catalog)]
ConfigDep = Annotated[ConfigService, Depends(_config)]
StorageDep = Annotated[StorageService, Depends(_storage)]
DownloadsDep = Annotated[DownloadService, Depends(_downloads)]
HealthDep = Annotated[HealthService, Depends(_health)]


def _repairs(request: Request) -> RepairService:
    return get_services(request).repairs


RepairsDep = Annotated[RepairService, Depends(_repairs)]


def _revisions(request: Request) -> RevisionService:
    return get_services(request).revisions


RevisionsDep = Annotated[RevisionService, Depends(_revisions)]

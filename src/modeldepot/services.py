"""The composition root: builds every service from ``Settings`` and runs their background work.

``open_services`` is the one place that wires the graph; the HTTP app (its lifespan), the
CLI and the tests all enter it. Nothing here is global: leaving the context stops the
background tasks, closes the HTTP client and disposes of the database engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modeldepot.analytics.performance import measured_download_speed
from modeldepot.auth.audit import AuditLog
from modeldepot.auth.keys import KeyStore
from modeldepot.availability.service import AvailabilityService
from modeldepot.catalog.builtin import BUILTIN_CATALOG
from modeldepot.catalog.hubclient import install_guarded_client
from modeldepot.catalog.loader import load_catalog_file, merge_catalogs
from modeldepot.catalog.resolver import SourceResolver
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.catalog.service import CatalogService
from modeldepot.cleanup.pins import PinStore
from modeldepot.cleanup.quota import QuotaKeeper
from modeldepot.cleanup.service import CleanupService
from modeldepot.config.directory import WriteProbe, write_problem
from modeldepot.config.service import ConfigService
from modeldepot.db import open_database
from modeldepot.downloads.ledger import Ledger
from modeldepot.downloads.service import DownloadService
from modeldepot.errors import ConfigError
from modeldepot.events import EventBus
from modeldepot.fallback.callbacks import CallbackSender
from modeldepot.fallback.queue import WaitQueue
from modeldepot.fallback.schemas import SuggestRequest
from modeldepot.fallback.service import FallbackService
from modeldepot.health.monitor import HealthMonitor
from modeldepot.health.repair import RepairService
from modeldepot.health.service import HealthService
from modeldepot.instance import Holder, InstanceLease, hold_lease, lock_directories
from modeldepot.revisions.service import RevisionService
from modeldepot.settings import Settings
from modeldepot.store.cache import HubCache
from modeldepot.store.service import StorageService
from modeldepot.units import mb_bytes
from modeldepot.usage.service import UsageService

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a route, a CLI command or a test needs, built once per process."""

    settings: Settings
    config: ConfigService
    catalog: CatalogService
    availability: AvailabilityService
    cache: HubCache
    storage: StorageService
    downloads: DownloadService
    health: HealthService
    repairs: RepairService
    revisions: RevisionService
    health_monitor: HealthMonitor
    bus: EventBus
    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    models_dir: Path
    models_dir_probe: WriteProbe
    keys: KeyStore
    audit: AuditLog
    usage: UsageService
    cleanup: CleanupService
    pins: PinStore
    quota: QuotaKeeper
    fallback: FallbackService
    queue: WaitQueue
    metrics_registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    instance: InstanceLease | None = None


def load_entries(
    settings: Settings, extra: Iterable[CatalogEntry] = (), *, include_builtin: bool = True
) -> dict[str, CatalogEntry]:
    """Built-in catalogue, then the catalogue file, then ``extra`` (e.g. demo models).

    Raises:
        CatalogError: the catalogue file is malformed (message names file, entry, problem).
    """
    layers: list[Iterable[CatalogEntry]] = [BUILTIN_CATALOG] if include_builtin else []
    if settings.catalog is not None:
        layers.append(load_catalog_file(settings.catalog))
    layers.append(extra)
    return merge_catalogs(*layers)


def prepare_models_dir(path: Path) -> bool:
    """Create the models directory if needed; return whether we may write to it.

    Raises:
        ConfigError: it exists and is not a directory, or cannot be created.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"Models directory {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Models directory {path} cannot be created: {exc.strerror}") from exc
    # A probe file, not os.access: access(2) is wrong for root, ACLs and NFS (issue 8).
    problem = write_problem(path)
    if problem is not None:
        logger.warning(
            "Models directory %s is not writable (%s): status works, downloads will fail",
            path,
            problem.strerror,
        )
    return problem is None


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    extra_entries: Iterable[CatalogEntry] = (),
    include_builtin: bool = True,
    background: bool = True,
) -> AsyncIterator[Services]:
    """Build the service graph; with ``background`` also start the periodic work.

    Raises:
        ConfigError, CatalogError, StorageError: the configuration cannot be used.
        AlreadyRunning: another process holds the data directory, the models directory
            or the database (see ``modeldepot.instance``).
    """
    entries = load_entries(settings, extra_entries, include_builtin=include_builtin)
    install_guarded_client()
    config = ConfigService(settings)
    models_dir = config.models_dir
    prepare_models_dir(models_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Before the database is touched: one process per data directory (issue 8).
    holder = Holder.starting(settings, models_dir=models_dir)
    locks = lock_directories(holder, data_dir=settings.data_dir, models_dir=models_dir)
    http = httpx.AsyncClient(
        headers={"Accept-Encoding": "identity", "User-Agent": "modeldepot"},
        timeout=httpx.Timeout(settings.hub_timeout_seconds),
        follow_redirects=False,
    )
    # Transfers get their own pool: many long-lived connections, no pool wait (the
    # download engine bounds connections itself), read timeout as a backstop to stalls.
    transfers = httpx.AsyncClient(
        headers={"User-Agent": "modeldepot"},
        timeout=httpx.Timeout(10, read=settings.stall_timeout_seconds * 2, pool=None),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        follow_redirects=False,
    )
    try:
        async with (
            open_database(
                settings.resolved_database_url, schema=settings.database_schema
            ) as sessions,
            hold_lease(sessions, holder=holder, locks=locks) as lease,
        ):
            services = await _build(
                settings, config, entries, (http, transfers), sessions, models_dir
            )
            services.instance = lease
            # Revisions first: their reconciliation must see the refs before a resumed
            # download can move one.
            await services.revisions.load()
            await services.downloads.load()
            await services.health.load()
            await services.repairs.load()
            await services.usage.load()
            await services.pins.load()
            await services.queue.load()
            if background:
                _start_background(services)
            try:
                yield services
            finally:
                await _stop_background(services)
                await services.usage.close()
                await services.repairs.close()
                await services.health.close()
                await services.downloads.close()
    finally:
        await transfers.aclose()
        await http.aclose()
        locks.release()


async def _build(
    settings: Settings,
    config: ConfigService,
    entries: dict[str, CatalogEntry],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    sessions: async_sessionmaker[AsyncSession],
    models_dir: Path,
) -> Services:
    http, transfers = clients
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    resolver = SourceResolver(
        endpoint=settings.hf_endpoint,
        token=token,
        timeout=settings.hub_timeout_seconds,
        http=http,
        offline=settings.offline,
    )
    catalog = CatalogService(
        entries=entries,
        resolver=resolver,
        sessions=sessions,
        concurrency=settings.hub_resolve_concurrency,
    )
    await catalog.load()
    bus = EventBus()
    cache = HubCache(models_dir=models_dir, catalog=catalog)
    availability = AvailabilityService(
        catalog=catalog, cache=cache, bus=bus, cache_ttl=settings.status_cache_ttl_seconds
    )
    usage = UsageService(
        sessions=sessions,
        model_ids=lambda: catalog.entries.keys(),
        enabled=lambda: config.current.features.usage_analytics,
    )
    storage = StorageService(
        cache=cache,
        entries=catalog.entries,
        config=lambda: config.current,
        usage=usage.last_use,
        pinned=lambda model_id: pins.is_pinned(model_id),  # built below
    )
    downloads = DownloadService(
        settings=settings,
        config=config,
        catalog=catalog,
        availability=availability,
        sessions=sessions,
        ledger=Ledger(sessions=sessions, bus=bus),
        cache=cache,
        client=transfers,
    )
    health = HealthService(
        catalog=catalog,
        availability=availability,
        bus=bus,
        sessions=sessions,
        cache=cache,
        concurrency=settings.health_check_concurrency,
        perf_read_bytes=mb_bytes(settings.health_perf_read_mb),
    )
    monitor = HealthMonitor(health=health, availability=availability, config=lambda: config.current)
    repairs = RepairService(
        health=health,
        downloads=downloads,
        catalog=catalog,
        cache=cache,
        config=lambda: config.current,
        sessions=sessions,
    )
    revisions = RevisionService(
        catalog=catalog,
        availability=availability,
        downloads=downloads,
        health=health,
        sessions=sessions,
        cache=cache,
        config_service=config,
    )
    pins = PinStore(catalog=catalog, sessions=sessions)
    cleanup = CleanupService(
        catalog=catalog,
        cache=cache,
        storage=storage,
        usage=usage,
        downloads=downloads,
        availability=availability,
        sessions=sessions,
        pins=pins,
        commits_in_use=revisions.commits_in_use,
        on_removed=revisions.record_removal,
    )
    fallback = FallbackService(
        catalog=catalog,
        availability=availability,
        bus=bus,
        download_speed=lambda: measured_download_speed(sessions, now=datetime.now(UTC)),
        enabled=lambda: config.current.features.intelligent_fallback,
    )

    async def alternatives(model_id: str) -> list[dict[str, Any]] | None:
        if not fallback.enabled():
            return None
        answer = await fallback.suggest(SuggestRequest(requested_model=model_id))
        return [s.model_dump(mode="json") for s in answer.suggestions[:3]]

    services = Services(
        settings=settings,
        config=config,
        catalog=catalog,
        availability=availability,
        cache=cache,
        storage=storage,
        downloads=downloads,
        health=health,
        repairs=repairs,
        revisions=revisions,
        health_monitor=monitor,
        bus=bus,
        http=http,
        sessions=sessions,
        models_dir=models_dir,
        models_dir_probe=WriteProbe(models_dir),
        keys=KeyStore(sessions),
        audit=AuditLog(sessions),
        usage=usage,
        cleanup=cleanup,
        pins=pins,
        quota=QuotaKeeper(cleanup=cleanup, models_dir=models_dir, config=lambda: config.current),
        fallback=fallback,
        queue=WaitQueue(
            catalog=catalog,
            availability=availability,
            downloads=downloads,
            bus=bus,
            sessions=sessions,
            claim_timeout=timedelta(minutes=settings.queue_claim_timeout_minutes),
            suggest=alternatives,
            enabled=lambda: config.current.features.intelligent_fallback,
            callbacks=CallbackSender(
                client=http, policy=downloads.source_policy, sessions=sessions
            ),
        ),
    )
    _wire(services)
    return services


def _wire(services: Services) -> None:
    """Every listener is wired here, where the services are built, never registered from
    a constructor: this is the one place that says who reacts to what."""
    catalog, availability = services.catalog, services.availability
    downloads, health, config = services.downloads, services.health, services.config
    catalog.on_manifest_change(availability.on_manifest_change)
    # Status fields from later capabilities, in this order: an active download's status
    # wins, then a health verdict may mark the installed bytes CORRUPTED.
    availability.add_contributor(downloads)
    availability.add_contributor(health)
    availability.add_contributor(services.usage)  # usage figures only: no status wins here

    async def rejudge(model_id: str) -> None:
        await availability.recompute(model_id)

    downloads.on_status_change(rejudge)
    services.usage.on_change(rejudge)
    downloads.on_ref_switch(services.revisions.record_switch)
    health.on_verdict(services.repairs.on_verdict)
    config.on_change(downloads.on_config_change)
    config.on_change(services.revisions.on_config_change)
    config.on_change(services.quota.on_config_change)
    downloads.on_short_of_space(services.quota.make_room)
    downloads.on_status_change(services.queue.on_download_change)
    availability.on_availability_change(services.queue.on_availability_change)
    services.cleanup.add_protection(services.queue.is_waited_for)


def _start_background(services: Services) -> None:
    settings = services.settings
    loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        (
            "catalog-refresh",
            lambda: services.catalog.run_refresh_loop(settings.hub_refresh_interval_minutes * 60),
        ),
        (
            "availability-watch",
            lambda: services.availability.run_watch_loop(settings.status_scan_interval_seconds),
        ),
        ("download-progress", services.downloads.run_progress_loop),
        ("health-monitor", services.health_monitor.run_loop),
        ("revision-sweep", services.revisions.run_sweep_loop),
        (
            "usage-retention",
            lambda: services.usage.run_retention_loop(settings.usage_retention_days),
        ),
        ("storage-quota", services.quota.run_check_loop),
        ("wait-queue", services.queue.run_loop),
        ("queue-callbacks", services.queue.callbacks.run_loop),
    ]
    for name, loop in loops:
        services.tasks.append(asyncio.create_task(_supervised(name, loop), name=name))


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop; if it crashes, log it and start it again after a pause."""
    while True:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Background task %s crashed; restarting in 5 s", name)
            await asyncio.sleep(5)


async def _stop_background(services: Services) -> None:
    for task in services.tasks:
        task.cancel()
    await asyncio.gather(*services.tasks, return_exceptions=True)
    services.tasks.clear()

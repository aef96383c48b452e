"""The HTTP and WebSocket shell: ``create_app(settings)`` builds the whole service.

Routes are thin: they take typed dependencies from ``modeldepot.api.deps`` and call one
service method. The seed's API lives under ``/api/v1``; ``/healthz``, ``/metrics`` and
``/openapi.json`` at the root.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry

from modeldepot import __version__
from modeldepot.api.access import (
    RATE_LIMIT_HEADERS,
    AccessControl,
    security_responses,
    unlisted_operations,
)
from modeldepot.api.envelope import RequestIdMiddleware, install_error_handlers
from modeldepot.api.guards import NetworkGuard, check_exposure
from modeldepot.api.metrics import HttpMetrics, MetricsMiddleware, ModelStatusCollector
from modeldepot.api.routes import (
    access,
    cleanup,
    config,
    dashboard,
    downloads,
    fallback,
    health,
    revisions,
    status,
    storage,
    system,
    usage,
    ws,
)
from modeldepot.catalog.schemas import CatalogEntry
from modeldepot.config.schemas import ConfigUpdate
from modeldepot.instance import describe_database
from modeldepot.services import open_services
from modeldepot.settings import Settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    extra_entries: Iterable[CatalogEntry] = (),
    include_builtin: bool = True,
    background: bool = True,
) -> FastAPI:
    """Build the FastAPI app; its lifespan opens (and closes) every service."""
    registry = CollectorRegistry()
    entries = tuple(extra_entries)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_exposure(settings)
        async with open_services(
            settings, extra_entries=entries, include_builtin=include_builtin, background=background
        ) as services:
            services.metrics_registry = registry
            collector = ModelStatusCollector(services)
            registry.register(collector)
            app.state.services = services
            if settings.auth_required and not await services.keys.all():
                logger.warning(
                    "API keys are required and none exists yet in %s: every request will be "
                    "refused until an admin runs `modeldepot keys create NAME --role admin`%s",
                    describe_database(settings),
                    " --demo" if settings.demo else "",
                )
            # What start-up built lives as long as the service: out of the collector's
            # sight, a full collection under load scans thousands of objects rather than
            # a hundred thousand (a 100+ ms pause in every request's p99, issue 9).
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()
                registry.unregister(collector)

    app = FastAPI(
        title="modeldepot",
        version=__version__,
        summary="Keeps generative video and image models available",
        lifespan=lifespan,
        # A trailing slash is another path (404), not a 307 outside the envelope.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    # /healthz first: routes are matched in order, one by one, and liveness probes come
    # often (issue 9: /healthz costs little more than a bare route).
    for router in (
        system.router,
        status.router,
        downloads.router,
        health.router,
        revisions.router,
        storage.router,
        config.router,
        access.router,
        cleanup.router,  # before usage: /analytics/cleanup before /analytics/{model_id}
        usage.router,
        fallback.router,
        ws.router,
        dashboard.router,
    ):
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    document = app.openapi()
    if missing := unlisted_operations(document):
        raise RuntimeError(f"Operations without an access policy: {', '.join(missing)}")
    # Outermost last: request id and metrics see every answer, refusals included; CORS
    # (only with configured origins) answers preflights and labels every answer, the
    # guards' refusals too, so a permitted page can read them; the network checks run
    # before anyone is authenticated.
    app.add_middleware(AccessControl, auth_required=settings.auth_required)
    app.add_middleware(NetworkGuard, settings=settings, document=document)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=[*RATE_LIMIT_HEADERS, "Retry-After", "X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry))
    app.add_middleware(RequestIdMiddleware)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    update_schema = ConfigUpdate.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(update_schema.pop("$defs", {}))
    components["ConfigUpdate"] = update_schema
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = {**operation["responses"], **security_responses(method, path)}
            operation["responses"] = dict(sorted(responses.items()))
    # Keys are optional (the seed): an operation takes a bearer key, or nothing when keys
    # are off.
    schema["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `modeldepot keys create` (needed when the "
            "service runs with auth_required)",
        }
    }
    schema["security"] = [{"bearer": []}, {}]
    app.openapi_schema = schema
    return schema

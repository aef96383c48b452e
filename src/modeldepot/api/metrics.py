"""Prometheus metrics: one registry per app (no process globals), rendered at ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from modeldepot.services import Services


class HttpMetrics:
    """Request count and latency by route template (never by raw path: bounded labels)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "modeldepot_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "modeldepot_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=registry,
        )
        # The labelled children, looked up once per label set rather than per request.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class MetricsMiddleware:
    """Pure ASGI (no ``BaseHTTPMiddleware``: no extra task or body copy per request)."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            self.metrics.observe(
                method=scope["method"],
                route=getattr(route, "path", "unmatched"),
                status=status,
                seconds=time.perf_counter() - start,
            )


class ModelStatusCollector(Collector):
    """Models per availability status, from the status cache (no disk access on scrape)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "modeldepot_models", "Catalogue models by availability status", labels=["status"]
        )
        counts: dict[str, int] = {}
        for status in self._services.availability.cached_statuses():
            counts[status.availability_status] = counts.get(status.availability_status, 0) + 1
        for status_name, count in sorted(counts.items()):
            gauge.add_metric([status_name], count)
        yield gauge


def render(services: Services) -> tuple[bytes, str]:
    return generate_latest(services.metrics_registry), CONTENT_TYPE_LATEST

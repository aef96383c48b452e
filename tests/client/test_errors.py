"""Error answers become the service's own exception classes; no answer is
``ServiceUnreachable``; an API key goes along on HTTP and on the WebSocket."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import httpx
import pytest

import modeldepot.errors as service_errors
from modeldepot.auth.keys import Role
from modeldepot.client import AsyncClient, Client, RateLimited, ServiceError
from modeldepot.client.errors import class_for, error_from_answer, error_from_response
from modeldepot.errors import (
    Conflict,
    DepotError,
    DownloadInProgress,
    Forbidden,
    InvalidInput,
    InvalidModelId,
    ModelNotFound,
    NotFound,
    ServiceUnreachable,
    Unauthorized,
    UpstreamUnavailable,
)
from modeldepot.testing import LocalHub, Throttle
from tests.client.support import ENTRIES, free_port, make_repos
from tests.live_server import LiveServer, live_server
from tests.support import SettingsFactory

SERVICE_CLASSES = [
    cls
    for cls in vars(service_errors).values()
    if inspect.isclass(cls) and issubclass(cls, DepotError)
]


@pytest.fixture
def server(local_hub: LocalHub, make_settings: SettingsFactory) -> Iterator[LiveServer]:
    make_repos(local_hub)
    local_hub.faults.add(Throttle(bytes_per_second=50_000), repo="acme/other", times=None)
    with live_server(make_settings(hf_endpoint=local_hub.endpoint), entries=ENTRIES) as running:
        running.call(lambda services: services.catalog.refresh_all(), timeout=20)
        yield running


def test_answers_raise_the_services_classes(server: LiveServer) -> None:
    with Client(server.base_url) as client:
        with pytest.raises(ModelNotFound) as unknown:
            client.model_status("nope")
        first = client.download("other")
        with pytest.raises(DownloadInProgress) as again:
            client.download("other")
        with pytest.raises(InvalidModelId) as invalid:
            client.progress("no spaces")
        client.cancel("other")
    assert unknown.value.message == "Model 'nope' is not in the catalogue"
    assert unknown.value.details == {"model_id": "nope"}
    assert isinstance(unknown.value, NotFound)
    assert unknown.value.__notes__[0].startswith("request id: req_")
    assert again.value.details["download_id"] == first.download_id
    assert isinstance(again.value, Conflict)
    assert (again.value.code, again.value.status) == ("DOWNLOAD_IN_PROGRESS", 409)
    assert isinstance(invalid.value, InvalidInput)
    assert invalid.value.status == 422


async def test_the_async_client_raises_them_too(server: LiveServer) -> None:
    async with AsyncClient(server.base_url) as client:
        with pytest.raises(ModelNotFound):
            await client.model_health("nope")
        with pytest.raises(InvalidModelId):
            await client.model_status("no spaces")


def test_every_service_class_is_found_by_its_code() -> None:
    assert len(SERVICE_CLASSES) > 30
    for cls in SERVICE_CLASSES:
        expected = cls if cls.code != "INTERNAL_ERROR" else DepotError
        assert class_for(cls.code, cls.status) is expected


@pytest.mark.parametrize(
    ("status", "code", "base"),
    [
        (404, "WIDGET_NOT_FOUND", NotFound),  # every 404 class is a NotFound
        (409, "WIDGET_BUSY", Conflict),
        (401, "TOKEN_EXPIRED", Unauthorized),
        (422, "WIDGET_INVALID", ServiceError),  # 422 classes share no 422 base
        (503, "WIDGET_DOWN", ServiceError),  # ServiceUnreachable is never answered
        (418, "TEAPOT", ServiceError),
    ],
)
def test_an_unknown_code_falls_back_by_status(
    status: int, code: str, base: type[DepotError]
) -> None:
    body = f'{{"error": {{"code": "{code}", "message": "m", "details": {{"x": 1}}}}}}'
    error = error_from_answer(status, body.encode())
    assert isinstance(error, base)
    assert (error.code, error.status, error.message, error.details) == (code, status, "m", {"x": 1})
    assert type(error) is type(error_from_answer(status, body.encode()))  # one class per code


def test_answers_without_the_envelope_and_with_retry_after() -> None:
    proxy = error_from_response(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(proxy, ServiceError)
    assert (proxy.code, proxy.status) == ("HTTP_502", 502)
    assert "Bad Gateway" in proxy.message
    limited = error_from_response(
        httpx.Response(429, json={"error": {"code": "RATE_LIMITED", "message": "slow down"}})
    )
    assert isinstance(limited, RateLimited)
    busy = error_from_response(
        httpx.Response(
            503,
            headers={"Retry-After": "7"},
            json={"error": {"code": "UPSTREAM_UNAVAILABLE", "message": "hub down"}},
        )
    )
    assert isinstance(busy, UpstreamUnavailable)
    assert busy.retry_after == 7.0


async def test_no_service_is_service_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as client:
        with pytest.raises(ServiceUnreachable, match="No answer from the modeldepot service"):
            client.healthz()
        with pytest.raises(ServiceUnreachable, match="No modeldepot event stream"):
            client.events().connect()
    async with AsyncClient(url) as aclient:
        with pytest.raises(ServiceUnreachable):
            await aclient.progress("tiny")
        with pytest.raises(ServiceUnreachable):
            await aclient.events().get(timeout=10)


def test_the_api_key_goes_on_http_and_the_websocket(
    local_hub: LocalHub, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(hf_endpoint=make_repos(local_hub).endpoint, auth_required=True)
    with live_server(settings, entries=ENTRIES) as server:
        _, reader = server.call(lambda services: services.keys.create("reader", Role.read))
        with Client(server.base_url) as anonymous:
            with pytest.raises(Unauthorized):
                anonymous.status()
            with pytest.raises(Unauthorized):
                anonymous.events().connect()
        with Client(server.base_url, api_key=reader) as client:
            assert client.status().summary.total_models == 2
            with pytest.raises(Forbidden):
                client.download("tiny")  # a read key may not
            with client.events(types=["model_availability_change"]) as events:
                assert events.subscriptions == 1
        monkeypatch.setenv("MODELDEPOT_API_KEY", reader)
        with Client(server.base_url) as from_env:
            assert from_env.model_status("tiny").model_id == "tiny"

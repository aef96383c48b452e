"""The seed's Python SDK class, kept for code written against it.

``EnhancedModelAvailabilityClient`` has the seed's constructor and methods
(``get_model_status``, ``start_download``, ``get_download_progress``,
``get_model_suggestions``, ``get_usage_analytics``) plus the ``queue_request`` its
examples call, and returns the same plain dicts: code written for the seed's class runs
unchanged, including its error handling::

    client = EnhancedModelAvailabilityClient("http://localhost:8000/api/v1")
    try:
        client.start_download("large-model")
    except requests.exceptions.HTTPError as e:
        if e.response.status_code == 409:
            print("Download already in progress")

An error answer raises an exception that is at once the service's typed error
(``modeldepot.errors.DownloadInProgress``, with ``code``, ``message``, ``details``) and a
``requests.exceptions.HTTPError`` whose ``.response`` has ``status_code``, ``json()``,
``text`` and ``headers``. ``requests`` is not a dependency of modeldepot: when it is not
installed (then no code can be catching its exceptions), the second base is this
module's ``HTTPError``, of the same shape. Requests go through this package's transport,
so 429 and 503 are retried like ``Client``'s, and a service that does not answer raises
``ServiceUnreachable``. New code should use ``Client``: typed answers, every route.
"""

from __future__ import annotations

import importlib
import weakref
from typing import Any
from urllib.parse import quote

import httpx

from modeldepot.client.calls import (
    API,
    DEFAULT_TIMEOUT_S,
    Call,
    RetryPolicy,
    api_key_or_env,
    auth_headers,
    build_request,
    exchange,
    read,
    root_url,
)
from modeldepot.client.errors import error_from_response

MODELS = f"{API}/models"


class HTTPError(Exception):
    """``requests.exceptions.HTTPError``'s shape, for when requests is not installed."""

    response: httpx.Response | None = None
    request: httpx.Request | None = None


def http_error_class() -> type[Exception]:
    """``requests.exceptions.HTTPError`` if requests is installed, else ``HTTPError``."""
    try:
        module = importlib.import_module("requests.exceptions")
    except ImportError:
        return HTTPError
    found = getattr(module, "HTTPError", None)
    return found if isinstance(found, type) and issubclass(found, Exception) else HTTPError


class EnhancedModelAvailabilityClient:
    """The seed's client: the same methods and plain-dict answers (module docstring)."""

    def __init__(
        self,
        base_url: str = "http://localhost:8000/api/v1",
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        key = api_key_or_env(api_key)
        self.base_url = base_url
        self.headers = {"Content-Type": "application/json", **auth_headers(key)}
        self._retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=root_url(base_url),
            headers=auth_headers(key),  # httpx sets Content-Type where there is a body
            timeout=timeout,
            transport=transport,
        )
        # The seed's class holds no connections (requests opens one per call), so code
        # written for it never closes it: the pool is closed when the client is collected.
        weakref.finalize(self, self._http.close)

    def get_model_status(self, model_id: str | None = None) -> dict[str, Any]:
        """Get model status for all models (the first page) or a specific model."""
        path = f"{MODELS}/status/detailed"
        if model_id:
            path += f"/{quote(model_id, safe='')}"
        return self._json("GET", path)

    def start_download(
        self, model_id: str, max_retries: int = 3, priority: str = "normal"
    ) -> dict[str, Any]:
        """Start a model download."""
        body = {
            "model_id": model_id,
            "action": "start",
            "max_retries": max_retries,
            "priority": priority,
        }
        return self._json("POST", f"{MODELS}/download/manage", body=body)

    def get_download_progress(self, model_id: str) -> dict[str, Any]:
        """Get download progress for a model."""
        return self._json("GET", f"{MODELS}/download/progress/{quote(model_id, safe='')}")

    def get_model_suggestions(
        self, requested_model: str, requirements: dict[str, Any]
    ) -> dict[str, Any]:
        """Get alternative model suggestions."""
        body = {"requested_model": requested_model, "requirements": requirements}
        return self._json("POST", f"{MODELS}/fallback/suggest", body=body)

    def get_usage_analytics(
        self, model_id: str | None = None, period: str = "week"
    ) -> dict[str, Any]:
        """Get usage analytics."""
        path = f"{MODELS}/analytics"
        if model_id:
            path += f"/{quote(model_id, safe='')}"
        return self._json("GET", path, params={"period": period})

    def queue_request(self, model_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Queue a generation request until the model is available (the seed's examples
        call it; its class lacks it)."""
        body = {"model_id": model_id, "request": request}
        return self._json("POST", f"{MODELS}/fallback/queue", body=body)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EnhancedModelAvailabilityClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _json(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        """Raises: an error that is the service's class and an HTTPError (see module)."""
        call = Call(method, path, _json_object, params=params or {}, body=body)
        response = exchange(self._http, build_request(self._http, call), self._retry)
        if response.is_error:
            error = error_from_response(response, mix_in=http_error_class())
            vars(error).update(response=response, request=response.request)
            raise error
        return read(call, response)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object as plain dicts and lists, as the seed's client returns it.

    Raises: ValueError for anything else (``read`` makes it UnexpectedResponse).
    """
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body

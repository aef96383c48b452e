"""The published OpenAPI document describes every route, body and error envelope."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from modeldepot.api.access import security_responses
from modeldepot.api.envelope import ErrorEnvelope
from modeldepot.ids import MODEL_ID_PATTERN
from modeldepot.testing import LocalHub, Status, Throttle, demo_repo_files
from tests.support import (
    RunningApp,
    SettingsFactory,
    fill_cache_with_huggingface_hub,
    hub_entry,
    run_app,
)


async def test_openapi_documents_routes_and_schemas(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        schema = (await app.client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/models/status/detailed",
        "/api/v1/models/status/detailed/{model_id}",
        "/api/v1/models/storage",
        "/api/v1/config/current",
        "/api/v1/config/update",
        "/healthz",
    ):
        assert path in paths, path
    components = schema["components"]["schemas"]
    assert {"ModelStatus", "ConfigUpdate", "ErrorEnvelope", "StoragePage"} <= set(components)
    update = paths["/api/v1/config/update"]["put"]
    body_schema = update["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["$ref"] == "#/components/schemas/ConfigUpdate"
    not_found = paths["/api/v1/models/status/detailed/{model_id}"]["get"]["responses"]["404"]
    assert not_found["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }


async def test_healthz_and_metrics(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        health = (await app.client.get("/healthz")).json()
        await app.client.get("/api/v1/models/status/detailed")
        metrics = (await app.client.get("/metrics")).text
    assert health["status"] == "ok"
    assert health["catalog_models"] == 3
    assert 'modeldepot_models{status="MISSING"} 3.0' in metrics
    assert 'route="/api/v1/models/status/detailed"' in metrics


# --- every documented status code is one the route really answers, and vice versa ---------

MALFORMED = object()
"""A probe body that is not JSON at all."""

Probe = tuple[str, str, str, Any]
"""(method, operation path as in the document, concrete URL, body)."""

V = "/api/v1"
STATUS_ONE = f"{V}/models/status/detailed/{{model_id}}"
PROGRESS = f"{V}/models/download/progress/{{model_id}}"
MANAGE = f"{V}/models/download/manage"
HEALTH_ONE = f"{V}/models/health/{{model_id}}"
CHECK = f"{V}/models/health/{{model_id}}/check"
REPAIR = f"{V}/models/health/{{model_id}}/repair"
CHECK_RUN = f"{V}/models/health/checks/{{check_id}}"
REPAIR_RUN = f"{V}/models/health/repairs/{{repair_id}}"
REVISIONS = f"{V}/models/revisions/{{model_id}}"
UPDATE = f"{V}/models/revisions/{{model_id}}/update"
ROLLBACK = f"{V}/models/revisions/{{model_id}}/rollback"
CONFIG_UPDATE = f"{V}/config/update"
KEYS = f"{V}/auth/keys"
KEY = f"{V}/auth/keys/{{name}}"
AUDIT = f"{V}/audit"
USAGE = f"{V}/models/usage"
ANALYTICS = f"{V}/models/analytics"
ANALYTICS_ONE = f"{V}/models/analytics/{{model_id}}"
RECOMMENDATIONS = f"{V}/models/analytics/cleanup"
CLEANUP = f"{V}/models/cleanup"
CLEANUP_RUN = f"{V}/models/cleanup/{{cleanup_id}}"
PIN = f"{V}/models/pins/{{model_id}}"
SUGGEST = f"{V}/models/fallback/suggest"
QUEUE = f"{V}/models/fallback/queue"
QUEUE_ONE = f"{V}/models/fallback/queue/{{queue_id}}"
CLAIM = f"{V}/models/fallback/queue/{{queue_id}}/claim"
NO_ENTRY = "queue_0123456789abcdef"
LISTS = [  # paged (issue 10): a bad page, limit, sort or order is 422
    f"{V}/models/status/detailed",
    f"{V}/models/download/active",
    f"{V}/models/health",
    f"{V}/models/storage",
]
NO_ERRORS = [
    *LISTS,
    f"{V}/config/current",
    "/healthz",
    "/metrics",
    f"{V}/models/analytics/performance",
    f"{V}/models/pins",
]
BAD_ID = "sp%20ace"


def model_probes(method: str, template: str, suffix: str = "") -> list[Probe]:
    """Success, unknown model (404) and an id that breaks the rule (422) on a model route."""
    base = template.removesuffix("{model_id}" + suffix).removesuffix("{model_id}")
    body: Any = {} if method == "POST" else None
    return [
        (method, template, f"{base}tiny{suffix}", body),
        (method, template, f"{base}nope{suffix}", body),
        (method, template, f"{base}{BAD_ID}{suffix}", body),
    ]


def body_probes(template: str, url: str, wrong: dict[str, Any]) -> list[Probe]:
    """Not JSON at all (400) and JSON of the wrong type (422)."""
    return [("POST", template, url, MALFORMED), ("POST", template, url, wrong)]


async def call(app: RunningApp, probe: Probe) -> httpx.Response:
    method, _template, url, body = probe
    if body is MALFORMED:
        return await app.client.request(
            method, url, content=b'{"cut": ', headers={"content-type": "application/json"}
        )
    if body is None and method in ("POST", "PUT"):
        body = {}  # every POST takes a JSON body: {} for the defaults
    return await app.client.request(method, url, json=body)


def reserve(gb: float) -> Probe:
    return ("PUT", CONFIG_UPDATE, CONFIG_UPDATE, {"storage": {"min_free_space_gb": gb}})


def start(model_id: str) -> Probe:
    return ("POST", MANAGE, MANAGE, {"model_id": model_id, "action": "start"})


def probes() -> list[Probe]:
    """Requests that provoke every status each route can answer, in an order that sets up
    the state each needs (``tiny`` installed and behind the hub, ``fresh`` not installed,
    ``ghost`` installed but its hub unreachable)."""
    fresh_repair = ("POST", REPAIR, f"{V}/models/health/fresh/repair", {})
    return [
        *[("GET", path, path, None) for path in NO_ERRORS],
        *[("GET", path, f"{path}?limit=101", None) for path in LISTS],
        *model_probes("GET", STATUS_ONE),
        ("GET", STATUS_ONE, f"{V}/models/status/detailed/tiny?refresh=maybe", None),
        *model_probes("GET", PROGRESS),
        *model_probes("GET", HEALTH_ONE),
        *model_probes("GET", REVISIONS),
        ("GET", REVISIONS, f"{V}/models/revisions/tiny?refresh=maybe", None),
        ("GET", CHECK_RUN, f"{V}/models/health/checks/check_0123456789abcdef", None),
        ("GET", CHECK_RUN, f"{V}/models/health/checks/nope", None),
        ("GET", REPAIR_RUN, f"{V}/models/health/repairs/repair_0123456789abcdef", None),
        ("GET", REPAIR_RUN, f"{V}/models/health/repairs/nope", None),
        *model_probes("POST", CHECK, "/check"),
        *body_probes(CHECK, f"{V}/models/health/tiny/check", {"force_check": "yes"}),
        # 507 first, while a 100 TB reserve refuses every download.
        reserve(100_000),
        start("fresh"),
        ("POST", UPDATE, f"{V}/models/revisions/tiny/update", None),
        ("POST", REPAIR, f"{V}/models/health/tiny/repair", {"repair_type": "redownload"}),
        reserve(0),
        ("PUT", CONFIG_UPDATE, CONFIG_UPDATE, MALFORMED),
        ("PUT", CONFIG_UPDATE, CONFIG_UPDATE, {"downloads": {"max_retries": "3"}}),
        *model_probes("POST", ROLLBACK, "/rollback"),
        *body_probes(ROLLBACK, f"{V}/models/revisions/tiny/rollback", {"commit": 40}),
        ("POST", ROLLBACK, f"{V}/models/revisions/fresh/rollback", None),
        ("POST", UPDATE, f"{V}/models/revisions/fresh/update", None),
        ("POST", UPDATE, f"{V}/models/revisions/ghost/update", None),
        *model_probes("POST", UPDATE, "/update"),
        *body_probes(UPDATE, f"{V}/models/revisions/tiny/update", {"max_retries": "3"}),
        fresh_repair,
        ("POST", REPAIR, f"{V}/models/health/ghost/repair", {}),
        *model_probes("POST", REPAIR, "/repair"),
        *body_probes(REPAIR, f"{V}/models/health/tiny/repair", {"force_repair": "yes"}),
        start("ghost"),
        start("nope"),
        ("POST", MANAGE, MANAGE, {"model_id": "fresh", "action": "pause"}),
        *body_probes(MANAGE, MANAGE, {"model_id": "fresh", "action": "start", "priority": 1}),
        start("fresh"),  # throttled: still running for the next one
        start("fresh"),
        ("POST", MANAGE, MANAGE, {"model_id": "fresh", "action": "cancel"}),
        ("GET", KEYS, KEYS, None),
        ("GET", KEYS, f"{KEYS}?limit=101", None),
        ("POST", KEYS, KEYS, {"name": "app", "role": "user"}),
        ("POST", KEYS, KEYS, {"name": "app", "role": "read"}),
        *body_probes(KEYS, KEYS, {"name": "../x", "role": "root"}),
        ("DELETE", KEY, f"{KEYS}/app", None),
        ("DELETE", KEY, f"{KEYS}/app", None),
        ("DELETE", KEY, f"{KEYS}/{BAD_ID}", None),
        (
            "POST",
            USAGE,
            USAGE,
            {"events": [{"event_id": "u1", "model_id": "tiny", "type": "model_loaded"}]},
        ),
        (
            "POST",
            USAGE,
            USAGE,
            {"events": [{"event_id": "u3", "model_id": "nope", "type": "model_loaded"}]},
        ),
        *body_probes(
            USAGE, USAGE, {"events": [{"event_id": "u2", "model_id": "nope", "type": "x"}]}
        ),
        ("GET", AUDIT, AUDIT, None),
        ("GET", AUDIT, f"{AUDIT}?sort=password", None),
        *analytics_and_cleanup_probes(),
    ]


def analytics_and_cleanup_probes() -> list[Probe]:
    off = {"features": {"usage_analytics": False, "intelligent_fallback": False}}
    on = {"features": {"usage_analytics": True, "intelligent_fallback": True}}
    loaded = {"events": [{"event_id": "u9", "model_id": "tiny", "type": "model_loaded"}]}
    return [
        ("GET", ANALYTICS, ANALYTICS, None),
        ("GET", ANALYTICS, f"{ANALYTICS}?period=fortnight", None),
        *model_probes("GET", ANALYTICS_ONE),
        ("GET", RECOMMENDATIONS, RECOMMENDATIONS, None),
        ("GET", RECOMMENDATIONS, f"{RECOMMENDATIONS}?min_unused_days=-1", None),
        ("POST", CLEANUP, CLEANUP, {"cleanup_type": "auto", "dry_run": True}),
        ("POST", CLEANUP, CLEANUP, {"cleanup_type": "manual", "models_to_remove": ["nope"]}),
        *body_probes(CLEANUP, CLEANUP, {"cleanup_type": "sweep"}),
        ("GET", CLEANUP_RUN, f"{CLEANUP}/cleanup_0123456789abcdef", None),
        ("GET", CLEANUP_RUN, f"{CLEANUP}/nope", None),
        *model_probes("PUT", PIN),
        ("PUT", PIN, f"{V}/models/pins/tiny", MALFORMED),
        ("PUT", PIN, f"{V}/models/pins/tiny", {"reason": 5}),
        *model_probes("DELETE", PIN),
        ("POST", SUGGEST, SUGGEST, {"requested_model": "fresh"}),
        *body_probes(SUGGEST, SUGGEST, {"requested_model": "fresh", "requirements": 5}),
        *queue_probes(),
        ("PUT", CONFIG_UPDATE, CONFIG_UPDATE, off),
        ("POST", USAGE, USAGE, loaded),  # 409 FEATURE_DISABLED
        ("POST", SUGGEST, SUGGEST, {"requested_model": "fresh"}),  # 409 FEATURE_DISABLED
        ("POST", QUEUE, QUEUE, {"model_id": "tiny", "request": {"prompt": "x"}}),  # 409
        ("PUT", CONFIG_UPDATE, CONFIG_UPDATE, on),
    ]


def queue_probes() -> list[Probe]:
    """``tiny`` is available: its entry is READY at once (claimed, then 409); ``ghost``,
    removed, cannot be fetched again (503); a 100 TB reserve refuses the download a queue
    entry starts (507). Queue probes run last but for the usage switch: ghost is gone."""
    ask = {"request": {"prompt": "a fox"}}
    claimed = "tiny-entry"  # replaced by the id the first probe gets (see call())
    return [
        ("POST", QUEUE, QUEUE, {"model_id": "tiny", **ask}),
        ("POST", QUEUE, QUEUE, {"model_id": "nope", **ask}),
        # ghost removed, its hub gone: the download a queue entry needs cannot start (503)
        ("POST", CLEANUP, CLEANUP, {"cleanup_type": "manual", "models_to_remove": ["ghost"]}),
        ("POST", QUEUE, QUEUE, {"model_id": "ghost", **ask}),
        reserve(100_000),
        ("POST", QUEUE, QUEUE, {"model_id": "fresh", **ask}),
        reserve(0),
        *body_probes(QUEUE, QUEUE, {"model_id": "tiny", "request": {"prompt": 5}}),
        ("GET", QUEUE, QUEUE, None),
        ("GET", QUEUE, f"{QUEUE}?status=LOST", None),
        ("GET", QUEUE_ONE, f"{QUEUE}/{NO_ENTRY}", None),
        ("GET", QUEUE_ONE, f"{QUEUE}/nope", None),
        ("GET", QUEUE_ONE, f"{QUEUE}/{claimed}", None),
        ("POST", CLAIM, f"{QUEUE}/{claimed}/claim", None),
        ("POST", CLAIM, f"{QUEUE}/{claimed}/claim", None),
        ("POST", CLAIM, f"{QUEUE}/{NO_ENTRY}/claim", None),
        ("POST", CLAIM, f"{QUEUE}/nope/claim", None),
        ("POST", CLAIM, f"{QUEUE}/{claimed}/claim", MALFORMED),
        ("DELETE", QUEUE_ONE, f"{QUEUE}/{claimed}", None),
        ("DELETE", QUEUE_ONE, f"{QUEUE}/{NO_ENTRY}", None),
        ("DELETE", QUEUE_ONE, f"{QUEUE}/nope", None),
    ]


async def test_each_route_documents_exactly_the_error_statuses_it_answers(
    local_hub: LocalHub, make_settings: SettingsFactory
) -> None:
    files = demo_repo_files("t2v")
    local_hub.create_repo("acme/tiny", files)
    local_hub.create_repo("acme/fresh", demo_repo_files("i2v", seed=3))
    local_hub.create_repo("acme/ghost", demo_repo_files("t2v", seed=5))
    settings = make_settings(hf_endpoint=local_hub.endpoint)
    fill_cache_with_huggingface_hub(local_hub, "acme/ghost", settings.models_dir)
    local_hub.faults.add(Status(404), server="hub", repo="acme/ghost", times=None)
    local_hub.faults.add(Throttle(bytes_per_second=20_000), repo="acme/fresh", times=None)
    entries = tuple(hub_entry(m, f"acme/{m}") for m in ("tiny", "fresh", "ghost"))
    seen: dict[tuple[str, str], set[int]] = {}
    async with run_app(settings, entries=entries) as app:
        await app.client.post(MANAGE, json={"model_id": "tiny", "action": "start"})
        await asyncio.wait_for(app.services.downloads.run_until_idle(), 30)
        local_hub.commit("acme/tiny", add={"config.json": b'{"version": 2}\n'})
        entry_id = ""
        for probe in probes():
            if "tiny-entry" in probe[2]:
                probe = (probe[0], probe[1], probe[2].replace("tiny-entry", entry_id), probe[3])
            response = await call(app, probe)
            if probe[1] == QUEUE and probe[0] == "POST" and not entry_id:
                entry_id = response.json()["queue_id"]
            seen.setdefault((probe[0], probe[1]), set()).add(response.status_code)
            if response.status_code >= 400:
                ErrorEnvelope.model_validate(response.json())  # always the envelope
        document = (await app.client.get("/openapi.json")).json()

    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == set(seen), "every route is probed, and only real routes"
    mismatches = {}
    for key, operation in operations.items():
        # What the guards and access control add to every operation is provoked by
        # tests/security/test_openapi_security.py.
        guarded = {int(code) for code in security_responses(*key)}
        documented = {
            int(code) for code in operation["responses"] if not code.startswith("2")
        } - guarded
        answered = {code for code in seen[key] if code >= 400}
        if documented != answered | {500}:
            mismatches[key] = {"documented": sorted(documented), "answered": sorted(answered)}
        for code in documented:
            content = operation["responses"][str(code)]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert mismatches == {}, mismatches


async def test_model_ids_in_paths_carry_the_id_pattern(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        document = (await app.client.get("/openapi.json")).json()
    model_params = [
        parameter
        for item in document["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "model_id"
    ]
    assert [p["in"] for p in model_params].count("path") == 11
    assert [p["in"] for p in model_params].count("query") == 1  # the queue's filter
    for parameter in model_params:
        assert parameter["schema"].get("pattern", "") == MODEL_ID_PATTERN or any(
            option.get("pattern") == MODEL_ID_PATTERN
            for option in parameter["schema"].get("anyOf", [])
        )


async def test_every_bound_is_published_in_json_schema_terms(
    make_settings: SettingsFactory,
) -> None:
    """pydantic writes a bound it cannot translate (one outside a validator's wrapper) as
    its own ``ge``/``le``: clients and fuzzers would not see the range."""
    async with run_app(make_settings(), resolve=False) as app:
        document = (await app.client.get("/openapi.json")).json()
    raw: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            raw.extend(f"{where}.{k}" for k in ("ge", "le", "gt", "lt") if k in node)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, f"{where}[{n}]")

    walk(document, "")
    assert raw == []

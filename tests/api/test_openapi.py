"""The published OpenAPI document describes every route, body and error envelope."""

from __future__ import annotations

from tests.support import SettingsFactory, run_app


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
    assert {"ModelStatus", "ConfigUpdate", "ErrorEnvelope", "StorageResponse"} <= set(components)
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

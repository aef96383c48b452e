"""``/models/fallback``: what to use when the model asked for is not there yet."""

from __future__ import annotations

from fastapi import APIRouter

from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.routes import API_PREFIX
from modeldepot.fallback.schemas import SuggestRequest, SuggestResponse

router = APIRouter(prefix=f"{API_PREFIX}/models/fallback", tags=["fallback"])


@router.post("/suggest", response_model=SuggestResponse, responses=error_responses(400, 422))
async def suggest(request: SuggestRequest, services: ServicesDep) -> SuggestResponse:
    """Catalogue models that can stand in for ``requested_model``, best first, with a
    strategy (use one now, queue and wait, download, relax the requirements). A model
    outside the catalogue is answered too (``requested_model_status`` null). Announced on
    the WebSocket as ``fallback_suggestion`` while the requested model is not available."""
    return await services.fallback.suggest(request)

"""The seed's Python SDK class and its "Handling Model Unavailability" example, verbatim
(``ENHANCED_MODEL_AVAILABILITY_API.md``, "SDK Examples" and "Error Handling Examples").
Kept as the seed wrote them, lint and format exceptions and all: the test proves they run
unchanged.
"""
# ruff: noqa
# mypy: ignore-errors
# fmt: off

import requests
from typing import Dict, List, Optional

class EnhancedModelAvailabilityClient:
    def __init__(self, base_url: str = "http://localhost:8000/api/v1", api_key: Optional[str] = None):
        self.base_url = base_url
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def get_model_status(self, model_id: Optional[str] = None) -> Dict:
        """Get model status for all models or specific model."""
        url = f"{self.base_url}/models/status/detailed"
        if model_id:
            url += f"/{model_id}"

        response = requests.get(url, headers=self.headers)
        response.raise_for_status()
        return response.json()

    def start_download(self, model_id: str, max_retries: int = 3, priority: str = "normal") -> Dict:
        """Start model download with retry logic."""
        url = f"{self.base_url}/models/download/manage"
        data = {
            "model_id": model_id,
            "action": "start",
            "max_retries": max_retries,
            "priority": priority
        }

        response = requests.post(url, json=data, headers=self.headers)
        response.raise_for_status()
        return response.json()

    def get_download_progress(self, model_id: str) -> Dict:
        """Get download progress for a model."""
        url = f"{self.base_url}/models/download/progress/{model_id}"

        response = requests.get(url, headers=self.headers)
        response.raise_for_status()
        return response.json()

    def get_model_suggestions(self, requested_model: str, requirements: Dict) -> Dict:
        """Get alternative model suggestions."""
        url = f"{self.base_url}/models/fallback/suggest"
        data = {
            "requested_model": requested_model,
            "requirements": requirements
        }

        response = requests.post(url, json=data, headers=self.headers)
        response.raise_for_status()
        return response.json()

    def get_usage_analytics(self, model_id: Optional[str] = None, period: str = "week") -> Dict:
        """Get usage analytics."""
        url = f"{self.base_url}/models/analytics"
        if model_id:
            url += f"/{model_id}"

        params = {"period": period}
        response = requests.get(url, headers=self.headers, params=params)
        response.raise_for_status()
        return response.json()


HANDLING_MODEL_UNAVAILABILITY = """\
try:
    # Try to use preferred model
    status = client.get_model_status("preferred-model")

    if not status["is_available"]:
        # Get suggestions for alternatives
        suggestions = client.get_model_suggestions(
            "preferred-model",
            {"quality": "high", "speed": "medium"}
        )

        best_alternative = suggestions["suggestions"][0]

        if best_alternative["availability_status"] == "AVAILABLE":
            print(f"Using alternative: {best_alternative['suggested_model']}")
            # Use alternative model
        else:
            # Queue request for preferred model
            queue_result = client.queue_request(
                "preferred-model",
                {"prompt": "Generate video..."}
            )
            print(f"Request queued, position: {queue_result['position']}")

except Exception as e:
    print(f"Error handling model unavailability: {e}")
"""

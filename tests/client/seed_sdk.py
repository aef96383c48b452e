"""The seed's Python SDK "Usage example" and "Handling Download Failures", verbatim
(``ENHANCED_MODEL_AVAILABILITY_API.md``, "SDK Examples" and "Error Handling Examples").
Kept as the seed wrote them: ``tests/client/test_seed_sdk.py`` runs them unchanged against
``modeldepot.client.EnhancedModelAvailabilityClient`` and the real service.
"""
# ruff: noqa
# fmt: off

USAGE_EXAMPLE = """\
# Usage example
client = EnhancedModelAvailabilityClient()

# Check model status
status = client.get_model_status("my-model")
print(f"Model available: {status['is_available']}")

# Start download if not available
if not status['is_available']:
    result = client.start_download("my-model")
    print(f"Download started: {result['success']}")

# Get suggestions for unavailable model
suggestions = client.get_model_suggestions(
    "unavailable-model",
    {"quality": "high", "speed": "medium"}
)
print(f"Suggested alternative: {suggestions['suggestions'][0]['suggested_model']}")
"""

HANDLING_DOWNLOAD_FAILURES = """\
try:
    result = client.start_download("large-model")
    download_id = result["download_id"]

    # Monitor progress
    while True:
        progress = client.get_download_progress("large-model")
        if progress["status"] == "COMPLETED":
            break
        elif progress["status"] == "FAILED":
            # Handle failure with retry
            if progress["retry_count"] < progress["max_retries"]:
                print("Download failed, retrying...")
                time.sleep(30)  # Wait before checking again
            else:
                print("Download failed after all retries")
                break
        time.sleep(5)

except requests.exceptions.HTTPError as e:
    if e.response.status_code == 409:
        print("Download already in progress")
    elif e.response.status_code == 422:
        error_data = e.response.json()
        print(f"Validation error: {error_data['error']['message']}")
    else:
        print(f"HTTP error: {e}")
"""

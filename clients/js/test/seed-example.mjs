// The seed's JavaScript "Usage example" (ENHANCED_MODEL_AVAILABILITY_API.md, "SDK
// Examples", from `// Usage example` to its end), verbatim, run against this SDK's class.
// One thing differs from the seed, above the example: the class's default base URL is the
// service under test (MODELDEPOT_BASE_URL) rather than http://localhost:8000/api/v1.
// Importing this module runs the example; seed-example.test.js watches what it prints.

import { EnhancedModelAvailabilityClient as ModelDepotClient } from "../src/index.js";

class EnhancedModelAvailabilityClient extends ModelDepotClient {
  constructor(baseUrl = process.env.MODELDEPOT_BASE_URL, apiKey = null) {
    super(baseUrl, apiKey);
  }
}

// ---- the seed's example, unchanged ----
// Usage example
const client = new EnhancedModelAvailabilityClient();

// Check model status
client
  .getModelStatus("my-model")
  .then((status) => {
    console.log("Model available:", status.is_available);

    // Start download if not available
    if (!status.is_available) {
      return client.startDownload("my-model");
    }
  })
  .then((result) => {
    if (result) {
      console.log("Download started:", result.success);
    }
  })
  .catch((error) => {
    console.error("Error:", error);
  });

// Connect to WebSocket for real-time updates
const ws = client.connectWebSocket();
// ---- end of the seed's example ----

export { client, ws };

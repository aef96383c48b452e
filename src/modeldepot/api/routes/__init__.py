"""HTTP routes, one module per resource. The seed's API lives under ``API_PREFIX``."""

API_PREFIX = "/api/v1"

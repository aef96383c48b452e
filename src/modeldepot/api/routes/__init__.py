"""HTTP routes, one module per resource. The seed's API lives under ``API_PREFIX``."""

from typing import Annotated

from fastapi import Path

from modeldepot.ids import MODEL_ID_PATTERN

API_PREFIX = "/api/v1"

ModelIdPath = Annotated[
    str,
    Path(
        description="Catalogue model id: 1-128 letters, digits, '.', '_' or '-', starting "
        "with a letter or digit (anything else is 422 INVALID_MODEL_ID)",
        pattern=MODEL_ID_PATTERN,
    ),
]
"""A model id in a path. Routes declare it as ``{model_id:path}`` so that an id with a
slash (``../x``) reaches validation and is refused as 422 rather than routed elsewhere."""

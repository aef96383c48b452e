"""Shell completion of MODEL arguments: the catalogue's model ids.

``modeldepot --install-completion`` (typer's) installs completion for the user's shell;
MODEL arguments then complete from the running service's catalogue (``--url``,
``MODELDEPOT_URL`` or the configured host and port, asked with a short timeout), or,
when no service answers, from the catalogue this machine would load (the built-in models
and the ``catalog`` file of the settings). Completion runs inside the user's shell at
every Tab: it never raises and never prints; whatever fails, it offers what it has.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import typer

from modeldepot.cli.remote import service_url
from modeldepot.client import Client, RetryPolicy
from modeldepot.client.calls import URL_ENV
from modeldepot.errors import DepotError
from modeldepot.services import load_entries
from modeldepot.settings import Settings

COMPLETION_TIMEOUT_S = 0.5
"""Per request to the service: a Tab must answer at once, even when the service hangs."""
MAX_PAGES = 20  # 2000 models: more than any catalogue; bounds a misbehaving answer

logger = logging.getLogger(__name__)


def complete_model_id(ctx: typer.Context, incomplete: str) -> list[str]:
    """The model ids that start with ``incomplete`` (typer's ``autocompletion``)."""
    try:
        config, url = ctx.params.get("config"), ctx.params.get("url")
        ids = model_ids(
            config=config if isinstance(config, Path) else None,
            url=url if isinstance(url, str) else None,
        )
    except Exception:
        logger.debug("model id completion failed", exc_info=True)
        return []
    return sorted(i for i in ids if i.startswith(incomplete))


def model_ids(*, config: Path | None, url: str | None) -> set[str]:
    """The running service's model ids, else the local catalogue's (possibly empty)."""
    try:
        settings: Settings | None = Settings.load(config_file=config)
    except DepotError:
        settings = None
    target = url or os.environ.get(URL_ENV) or (service_url(settings) if settings else None)
    if target:
        # No service answering there falls through to the catalogue this machine loads.
        with contextlib.suppress(DepotError, ValueError):
            return _service_ids(target)
    if settings is None:
        return set()
    try:
        return set(load_entries(settings))
    except DepotError:
        return set()


def _service_ids(base_url: str) -> set[str]:
    """Every model id of the service's status listing, page by page.

    Raises: DepotError (ServiceUnreachable, ...) or ValueError (not a URL)."""
    ids: set[str] = set()
    retry = RetryPolicy(attempts=1)
    with Client(base_url, timeout=COMPLETION_TIMEOUT_S, retry=retry) as client:
        page = pages = 1
        while page <= min(pages, MAX_PAGES):
            answer = client.status(page=page, limit=100)
            ids.update(answer.models)
            pages, page = answer.pagination.pages, page + 1
    return ids

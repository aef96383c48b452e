"""The arguments and options every ``modeldepot`` command spells the same way.

One definition each, so ``--url``, ``--config``, ``--json`` and ``MODEL`` (with its shell
completion from the catalogue) read and behave alike in every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modeldepot.api.pagination import MAX_LIMIT
from modeldepot.cli.completion import complete_model_id
from modeldepot.downloads.schemas import Priority

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file", exists=False)
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MODELDEPOT_URL",
        help="The service to use, e.g. http://127.0.0.1:8000 (must answer). Without it: the "
        "service at the configured host and port.",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the API's JSON answer, and nothing else on stdout"),
]
ModelArgument = Annotated[
    str,
    typer.Argument(metavar="MODEL", help="Catalogue model id", autocompletion=complete_model_id),
]
OptionalModelArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="MODEL",
        help="Catalogue model id (default: every model)",
        autocompletion=complete_model_id,
        show_default=False,
    ),
]
PageOption = Annotated[int, typer.Option(min=1, help="Which page of the list, from 1")]
LimitOption = Annotated[
    int, typer.Option(min=1, max=MAX_LIMIT, help=f"Items per page, 1 to {MAX_LIMIT}")
]

BandwidthOption = Annotated[
    float | None,
    typer.Option(
        "--bandwidth-limit", metavar="MBPS", min=0, help="MB/s for this download; 0: none"
    ),
]
RetriesOption = Annotated[int | None, typer.Option(min=0, max=100, help="Retries, 0 to 100")]
PriorityOption = Annotated[Priority | None, typer.Option("--priority", help="Queue priority")]

"""Shell completion of MODEL arguments, exercised the way bash asks for it
(``_MODELDEPOT_COMPLETE=complete_bash`` with ``COMP_WORDS``/``COMP_CWORD``): the running
service's model ids, else the local catalogue's, and never an error in the shell."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from modeldepot.cli.main import app
from modeldepot.testing import LocalHub
from tests.cli.api_support import MODEL, OTHER, Cli
from tests.cli.test_pull import cli_env

BUILTIN = ("I2V-A14B", "T2V-A14B", "TI2V-5B")


def complete(words: str, env: dict[str, str]) -> Result:
    """What bash gets when Tab is pressed after ``words`` (the last one being completed)."""
    bash = {
        "_MODELDEPOT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    return CliRunner().invoke(app, [], env=env | bash, prog_name="modeldepot")


def offered(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stdout.split()


def test_models_complete_from_the_running_service(cli: Cli) -> None:
    every = complete("modeldepot pause ", cli.env)
    started = complete("modeldepot status t", cli.env)
    by_url = complete(
        f"modeldepot check --url {cli.server.base_url} o",
        cli.env
        | {
            "MODELDEPOT_PORT": "9"  # only --url leads to the service
        },
    )

    assert offered(every) == [OTHER, MODEL]  # the service's catalogue: no built-ins there
    assert offered(started) == [MODEL]
    assert offered(by_url) == [OTHER]


def test_models_complete_from_the_local_catalogue_without_a_service(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, hub=local_hub, models={"my-video": "acme/my-video"})

    every = complete("modeldepot pull ", env)
    prefixed = complete("modeldepot repair T", env)
    url_down = complete("modeldepot status m", env | {"MODELDEPOT_URL": "http://127.0.0.1:9"})

    assert offered(every) == [*BUILTIN, "my-video"]
    assert offered(prefixed) == ["T2V-A14B", "TI2V-5B"]
    assert offered(url_down) == ["my-video"]
    assert not (tmp_path / "data").exists()  # completion opens no database


def test_completion_never_fails_in_the_shell(local_hub: LocalHub, tmp_path: Path) -> None:
    broken = tmp_path / "catalog.toml"
    broken.write_text("[[models]]\nid = 'bad id'\n")
    env = cli_env(tmp_path, hub=local_hub)

    bad_catalogue = complete("modeldepot status ", env | {"MODELDEPOT_CATALOG": str(broken)})
    no_config = complete("modeldepot status ", env | {"MODELDEPOT_CONFIG_FILE": "/nope.toml"})
    not_a_url = complete("modeldepot status --url ftp:nope ", env)

    assert offered(bad_catalogue) == []  # nothing to offer: offers nothing, quietly
    assert bad_catalogue.stderr == ""
    assert offered(no_config) == []
    assert offered(not_a_url) == list(BUILTIN)  # the catalogue, as without a service

"""The dashboard's files as the service serves them: types, caching, CSP, no escapes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

from modeldepot.api.routes.dashboard import CONTENT_TYPES
from tests.support import SettingsFactory, run_app

STATIC = Path(str(files("modeldepot").joinpath("dashboard", "static")))
MARKUP_RE = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|\.style\.|\"style\"")
IMPORT_RE = re.compile(r"""^\s*(?:import|export)\b[^"';]*?from\s+["']([^"']+)["']""", re.MULTILINE)


async def test_the_page_and_its_files_are_served_with_their_types_and_revalidated(
    make_settings: SettingsFactory,
) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        page = await app.client.get("/")
        script = await app.client.get("/dashboard/views/models.js")
        style = await app.client.get("/dashboard/style.css")
        again = await app.client.get("/", headers={"If-None-Match": page.headers["etag"]})
        changed = await app.client.get("/", headers={"If-None-Match": '"something-else"'})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert page.text == (STATIC / "index.html").read_text()
    for answer in (page, script, style):
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["etag"].startswith('"')
        # the API's guard headers reach the page too: same-origin files only
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert again.status_code == 304
    assert again.content == b""
    assert changed.status_code == 200


async def test_only_the_shipped_files_are_served(make_settings: SettingsFactory) -> None:
    async with run_app(make_settings(), resolve=False) as app:
        answers = {
            path: await app.client.get(path)
            for path in (
                "/dashboard/nothing.js",
                "/dashboard/../api/routes/dashboard.py",
                "/dashboard/%2e%2e/%2e%2e/settings.py",
                "/dashboard/views",
                "/dashboard/.hidden.js",
                "/dashboard/index.html.bak",
            )
        }
    for path, answer in answers.items():
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] in ("NOT_FOUND", "ROUTE_NOT_FOUND"), path


class _InlineFinder(HTMLParser):
    """What a strict Content-Security-Policy would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style" or "style" in names:
            self.blocked.append(f"<{tag}> inline style")
        if tag == "script" and "src" not in names:
            self.blocked.append("inline <script>")
        self.blocked += [f"<{tag} {name}>" for name in names if name.startswith("on")]
        for name, value in attrs:
            if name in ("src", "href") and value and re.match(r"^(https?:)?//", value):
                self.blocked.append(f"<{tag} {name}={value}> from elsewhere")


def test_the_page_needs_nothing_the_policy_forbids_and_every_import_is_shipped() -> None:
    finder = _InlineFinder()
    finder.feed((STATIC / "index.html").read_text())
    assert finder.blocked == []
    shipped = {path for path in STATIC.rglob("*") if path.is_file()}
    assert {path.suffix.lstrip(".") for path in shipped} <= set(CONTENT_TYPES)
    for module in STATIC.rglob("*.js"):
        source = module.read_text()
        # text from the service never becomes markup; no style attribute (CSP)
        assert not MARKUP_RE.search(source), module
        for target in IMPORT_RE.findall(source):
            assert target.startswith("./") or target.startswith("../"), (module, target)
            assert (module.parent / target).resolve() in shipped, (module, target)

"""The README, run as written: set-up, the tour against ``bash scripts/serve --demo``, in the
order printed, in one shell (so ``check=$(...)`` carries on to the next command).

Only the port differs from what a user types: the service runs on a free port given through
``MODELDEPOT_PORT`` (a real setting, read by ``serve`` and by the ``modeldepot`` client
commands alike), and ``localhost:8000`` in the commands is replaced by it. Each command must
exit 0; a JSON answer must not be an error envelope unless the line says
``# expect: <status> <CODE>``, and then it must be exactly that error; a ``jq`` filter must
not print a bare ``null``; the ``modeldepot`` commands must reach the service. The service's
own log must read as the README says: one line per request, no library chatter, no
traceback (also when clients go away mid-request). Commands of the benchmark section take
minutes and install tools: they are run by hand (``bench/README.md``), and this test checks
they are the only ones left out.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldepot.catalog.loader import load_catalog_file

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 120.0
EXPECT = re.compile(r"#\s*expect:\s*(\d{3})\s+([A-Z_]+)")
# Sections whose commands this test runs; the benchmark commands are run by hand.
BY_HAND = {"Benchmarks"}
SUITE = "bash scripts/check"  # the command running this very test


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    body: str


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    section = ""
    fence: str | None = None
    lines: list[str] = []
    for line in README.read_text().splitlines():
        if fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.startswith("```"):
                fence, lines = line[3:].strip(), []
        elif line.startswith("```"):
            blocks.append(Block(section, fence, "\n".join(lines)))
            fence = None
        else:
            lines.append(line)
    return blocks


def commands(body: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comment-only lines dropped."""
    result: list[str] = []
    pending = ""
    for line in body.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        result.append(pending + line.strip())
        pending = ""
    assert not pending, f"a continued line never ends: {pending}"
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user_env(tmp_path: Path, port: int) -> dict[str, str]:
    """A user's shell: no modeldepot or hub settings of the test run, own directories."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDEPOT_", "HF_"))}
    env.update(
        MODELDEPOT_PORT=str(port),
        MODELDEPOT_DATA_DIR=str(tmp_path / "data"),
        MODELDEPOT_MODELS_DIR=str(tmp_path / "models"),
        HF_HOME=str(tmp_path / "hf-home"),
        COLUMNS="200",
    )
    return env


class Service:
    """``bash scripts/serve ...`` as a user starts it, its log in a file."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.base_url = f"http://127.0.0.1:{env['MODELDEPOT_PORT']}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Service:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.command} exited:\n{self.log.read_text()}")
            assert time.monotonic() < deadline, f"{self.command} never answered:\n{self.logs()}"
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            # 401: up, and asking for a key (auth_required)
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code in (200, 401)
        return False

    def __exit__(self, *_exc: object) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C, as the README says
        try:
            code = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"Ctrl-C did not stop the service:\n{self.logs()}") from None
        assert code == 0, f"exit {code} after Ctrl-C:\n{self.logs()}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def check_log(text: str) -> None:
    """The log is for people: our requests only, once each, nothing alarming."""
    assert "Traceback" not in text, text
    assert " ERROR " not in text, text
    assert " CRITICAL " not in text, text
    assert "alembic" not in text, text  # migration chatter is debug-level
    access = [line for line in text.splitlines() if "uvicorn.access" in line]
    assert access, text
    for line in access:
        path = line.split('"')[1].split()[1]
        assert path.startswith(("/api/v1/", "/healthz")), f"not our request: {line}"
    started = [line for line in text.splitlines() if "Started server process" in line]
    assert len(started) == 1, text  # the demo hub's own servers say nothing


@dataclass
class Outcome:
    command: str
    rc: int
    stdout: str
    stderr: str


def run_in_one_shell(cmds: list[str], env: dict[str, str], work: Path) -> list[Outcome]:
    """Run ``cmds`` in order in one bash (variables carry on); each one's output apart."""
    script = ["set -o pipefail", f"cd {shlex.quote(str(ROOT))}"]
    for n, command in enumerate(cmds):
        out = work / f"{n}"
        script.append(f"{{ {command}\n}} >{out}.stdout 2>{out}.stderr; echo $? >{out}.rc")
    subprocess.run(
        ["bash", "-c", "\n".join(script)], env=env, timeout=COMMAND_TIMEOUT_S, check=False
    )
    outcomes = []
    for n, command in enumerate(cmds):
        out = work / f"{n}"
        assert (work / f"{n}.rc").exists(), f"the shell stopped before: {command}"
        outcomes.append(
            Outcome(
                command,
                int((work / f"{n}.rc").read_text()),
                Path(f"{out}.stdout").read_text(),
                Path(f"{out}.stderr").read_text(),
            )
        )
    return outcomes


def json_documents(text: str) -> list[Any]:
    """Every JSON document in ``text`` (jq prints one per filter); [] if it is not JSON."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        try:
            document, at = decoder.raw_decode(text, at)
        except ValueError:
            return []
        documents.append(document)
        while at < len(text) and text[at].isspace():
            at += 1
    return documents


def judge(outcome: Outcome, log: str) -> None:
    where = f"$ {outcome.command}\nstdout: {outcome.stdout}\nstderr: {outcome.stderr}"
    assert outcome.rc == 0, f"{where}\nservice log tail:\n{log[-3000:]}"
    documents = json_documents(outcome.stdout)
    errors = [d["error"] for d in documents if isinstance(d, dict) and "error" in d]
    expected = EXPECT.search(outcome.command)
    if expected is None:
        assert not errors, where
    else:
        assert [e["code"] for e in errors] == [expected.group(2)], where
    if "| jq" in outcome.command and " -r " not in outcome.command:
        assert documents, f"jq printed no JSON: {where}"
        assert None not in documents, f"jq printed null: {where}"
    if outcome.command.startswith("modeldepot "):
        assert "working in this process" not in outcome.stderr, where


def test_readme_blocks_are_all_run_here_or_by_hand() -> None:
    blocks = readme_blocks()
    shell = [b for b in blocks if b.language == "bash"]
    by_hand = [c for b in shell if b.section in BY_HAND for c in commands(b.body)]
    assert by_hand, "the benchmark section moved: update BY_HAND"
    assert all(c.startswith(".venv/bin/python bench/") for c in by_hand), by_hand
    assert {b.language for b in blocks} <= {"bash", "json", "toml", "python"}, blocks


def test_the_catalogue_example_is_a_valid_catalogue(tmp_path: Path) -> None:
    (toml,) = [b for b in readme_blocks() if b.language == "toml"]
    path = tmp_path / "catalog.toml"
    path.write_text(toml.body)

    (entry,) = load_catalog_file(path)

    assert entry.id == "tiny-video"
    assert entry.repo_id == "acme/tiny-video"


def test_the_readme_runs_as_written_against_the_demo(tmp_path: Path) -> None:
    port = free_port()
    env = user_env(tmp_path, port)
    runnable = [
        c
        for b in readme_blocks()
        if b.language == "bash" and b.section not in BY_HAND
        for c in commands(b.body)
    ]
    bare = [c.split(" #")[0].strip() for c in runnable]
    first_run = bare.index("bash scripts/serve")
    assert bare[first_run + 1] == SUITE  # running now: this test is part of it
    demo_at = bare.index("bash scripts/serve --demo")
    demo = bare[demo_at]
    tour = [c.replace("localhost:8000", f"localhost:{port}") for c in runnable[demo_at + 1 :]]
    assert all(not c.startswith("bash scripts/") for c in tour), tour

    # Set-up: the plain service starts without network and lists the real catalogue.
    offline = env | {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}  # nothing listens
    with Service(bare[first_run], offline, tmp_path / "serve.log") as service:
        status = httpx.get(f"{service.base_url}/api/v1/models/status/detailed").json()
    assert {"T2V-A14B", "I2V-A14B", "TI2V-5B"} <= set(status["models"])
    check_log(service.logs())

    # The tour, in order, in one shell.
    with Service(demo, env, tmp_path / "demo.log") as service:
        outcomes = run_in_one_shell(tour, env, tmp_path)
        for outcome in outcomes:
            judge(outcome, service.logs())
        api = f"{service.base_url}/api/v1"
        for model in ("tiny-t2v", "tiny-ti2v"):
            body = httpx.get(f"{api}/models/status/detailed/{model}").json()
            assert body["availability_status"] == "AVAILABLE", body
        current = httpx.get(f"{api}/config/current").json()
        assert current["downloads"]["max_concurrent_downloads"] == 5
        run_python_blocks(port, api)
        clients_that_go_away(port)
    check_log(service.logs())

    # What the README says persists across a restart of the demo does.
    with Service(demo, env, tmp_path / "demo-again.log") as service:
        body = httpx.get(f"{service.base_url}/api/v1/models/status/detailed/tiny-ti2v").json()
        assert body["availability_status"] == "AVAILABLE", body
    check_log(service.logs())


def run_python_blocks(port: int, api: str) -> None:
    """Each Python example, as written (but the port), in a fresh interpreter; the usage
    helper's example must leave its generation in the analytics."""
    before = httpx.get(f"{api}/models/analytics/tiny-ti2v?period=day").json()
    for block in (b for b in readme_blocks() if b.language == "python"):
        code = block.body.replace("localhost:8000", f"localhost:{port}")
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-c", code],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    after = httpx.get(f"{api}/models/analytics/tiny-ti2v?period=day").json()
    uses = [body["models"]["tiny-ti2v"]["completed"] for body in (before, after)]
    assert uses[1] == uses[0] + 1, uses
    status = httpx.get(f"{api}/models/status/detailed/tiny-ti2v").json()
    assert status["is_loaded"] is True


def test_the_security_section_runs_with_keys_on(tmp_path: Path) -> None:
    """The section's commands, against the service started as it says (keys required)."""
    port = free_port()
    env = user_env(tmp_path, port)
    (block,) = [b for b in readme_blocks() if b.section == "Security" and b.language == "bash"]
    tour = [c.replace("localhost:8000", f"localhost:{port}") for c in commands(block.body)]
    tour.insert(0, 'export PATH="$PWD/.venv/bin:$PATH"')  # as the tour's first block does
    keys_on = env | {
        "MODELDEPOT_AUTH_REQUIRED": "true",
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens: no network
    }
    with Service("bash scripts/serve", keys_on, tmp_path / "serve.log") as service:
        api = f"{service.base_url}/api/v1"
        refused = httpx.get(f"{api}/models/status/detailed")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHORIZED"
        outcomes = run_in_one_shell(tour, keys_on, tmp_path)
        for outcome in outcomes:
            judge(outcome, service.logs())
        answers = [o for o in outcomes if o.command.startswith("curl")]
        assert [json.loads(o.stdout) for o in answers] == [3]  # the three built-in models
        (admin,) = [o for o in outcomes if "--role admin" in o.command]
        key = admin.stdout.strip().splitlines()[-1]
        audit = httpx.get(f"{api}/audit", headers={"Authorization": f"Bearer {key}"}).json()
        actions = [(entry["action"], entry["target"]) for entry in audit["data"]]
        assert actions == [
            ("keys create", "laptop"),
            ("keys create", "dashboard"),
            ("keys revoke", "dashboard"),
        ]
    check_log(service.logs())


def clients_that_go_away(port: int) -> None:
    """Clients that leave mid-request or mid-stream: the service must not log a traceback."""
    request = (
        b"POST /api/v1/models/download/manage HTTP/1.1\r\nHost: localhost\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model_id"'
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)  # then leave before the body is complete
    key = base64.b64encode(os.urandom(16))
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(upgrade)
        assert sock.recv(4096).startswith(b"HTTP/1.1 101"), "no WebSocket"
        started = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/models/download/manage",
            json={"model_id": "tiny-i2v", "action": "start", "bandwidth_limit_mbps": 0.05},
        )
        assert started.status_code == 200, started.text
        assert sock.recv(4096), "no event"  # events flow; then the client vanishes
    cancelled = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/models/download/manage",
        json={"model_id": "tiny-i2v", "action": "cancel"},
    )
    assert cancelled.status_code == 200, cancelled.text


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

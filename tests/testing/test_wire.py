"""HTTP semantics of the local hub and CDN, checked with plain httpx."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from email.utils import formatdate
from urllib.parse import urlsplit

import httpx
import pytest

from modeldepot.testing import LocalHub, git_blob_sha1

REPO = "acme/wire"
SMALL = b"small regular file\n" * 10
BIG = bytes(range(256)) * 200  # 51200 bytes: LFS (over 10 KiB)
TEXT = b'{"key": "value"}\n' * 200


@pytest.fixture
def hub(local_hub: LocalHub) -> LocalHub:
    local_hub.create_repo(REPO, {"notes.dat": SMALL, "model.safetensors": BIG, "big.json": TEXT})
    return local_hub


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def _resolve(hub: LocalHub, name: str) -> str:
    return f"{hub.endpoint}/{REPO}/resolve/main/{name}"


def _blob(hub: LocalHub) -> str:
    return f"{hub.cdn_url}/blobs/{hashlib.sha256(BIG).hexdigest()}"


def test_head_regular_file_has_hub_headers(hub: LocalHub, client: httpx.Client) -> None:
    r = client.head(_resolve(hub, "notes.dat"))

    assert r.status_code == 200
    assert r.headers["etag"] == f'"{git_blob_sha1(SMALL)}"'
    assert r.headers["x-repo-commit"] == hub.repo(REPO).head.sha
    assert r.headers["content-length"] == str(len(SMALL))
    assert r.headers["accept-ranges"] == "bytes"
    assert "x-xet-hash" not in r.headers
    assert "link" not in r.headers


def test_lfs_file_redirects_to_the_cdn_on_another_port(hub: LocalHub, client: httpx.Client) -> None:
    sha = hashlib.sha256(BIG).hexdigest()

    head = client.head(_resolve(hub, "model.safetensors"))
    got = client.get(_resolve(hub, "model.safetensors"), follow_redirects=True)

    assert head.status_code == 302
    location = urlsplit(head.headers["location"])
    assert location.port == urlsplit(hub.cdn_url).port != urlsplit(hub.endpoint).port
    assert location.path == f"/blobs/{sha}"
    assert head.headers["x-linked-etag"] == f'"{sha}"'
    assert head.headers["x-linked-size"] == str(len(BIG))
    assert got.content == BIG
    assert got.headers["etag"] == f'"{sha}"'


def test_redirect_base_url_is_configurable(hub: LocalHub, client: httpx.Client) -> None:
    hub.redirect_base_url = "http://nginx.invalid:8080"

    head = client.head(_resolve(hub, "model.safetensors"))

    assert head.headers["location"].startswith("http://nginx.invalid:8080/blobs/")
    assert hub.blob_path(hashlib.sha256(BIG).hexdigest()).read_bytes() == BIG


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=100-199", 100, 199), ("bytes=51000-", 51000, 51199), ("bytes=-10", 51190, 51199)],
)
def test_range_is_answered_with_206(
    hub: LocalHub, client: httpx.Client, header: str, start: int, end: int
) -> None:
    r = client.get(_blob(hub), headers={"Range": header})

    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(BIG)}"
    assert r.content == BIG[start : end + 1]


def test_range_on_hub_served_file(hub: LocalHub, client: httpx.Client) -> None:
    r = client.get(_resolve(hub, "notes.dat"), headers={"Range": "bytes=5-9"})

    assert r.status_code == 206
    assert r.content == SMALL[5:10]


def test_unsatisfiable_range_is_416(hub: LocalHub, client: httpx.Client) -> None:
    r = client.get(_blob(hub), headers={"Range": f"bytes={len(BIG)}-"})

    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(BIG)}"
    assert r.content == b""


def test_if_range_with_current_etag_or_date_gives_206(hub: LocalHub, client: httpx.Client) -> None:
    head = client.head(_blob(hub))

    by_etag = client.get(
        _blob(hub), headers={"Range": "bytes=10-", "If-Range": head.headers["etag"]}
    )
    by_date = client.get(
        _blob(hub), headers={"Range": "bytes=10-", "If-Range": head.headers["last-modified"]}
    )

    assert by_etag.status_code == 206
    assert by_etag.content == BIG[10:]
    assert by_date.status_code == 206


def test_if_range_with_stale_validator_gives_full_200(hub: LocalHub, client: httpx.Client) -> None:
    stale_date = formatdate(0, usegmt=True)

    by_etag = client.get(_blob(hub), headers={"Range": "bytes=10-", "If-Range": '"stale"'})
    by_date = client.get(_blob(hub), headers={"Range": "bytes=10-", "If-Range": stale_date})

    assert by_etag.status_code == 200
    assert by_etag.content == BIG
    assert by_date.status_code == 200


def test_unknown_blob_is_404_on_the_cdn(hub: LocalHub, client: httpx.Client) -> None:
    assert client.get(f"{hub.cdn_url}/blobs/{'0' * 64}").status_code == 404
    assert client.get(f"{hub.cdn_url}/blobs/../etc/passwd").status_code == 404


def test_text_files_are_gzipped_when_accepted(hub: LocalHub, client: httpx.Client) -> None:
    r = client.get(_resolve(hub, "big.json"), headers={"Accept-Encoding": "gzip"})
    identity = client.get(_resolve(hub, "big.json"), headers={"Accept-Encoding": "identity"})

    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < len(TEXT)
    assert r.content == TEXT
    assert "content-encoding" not in identity.headers
    assert identity.headers["content-length"] == str(len(TEXT))


def test_hub_errors_carry_error_codes(hub: LocalHub, client: httpx.Client) -> None:
    missing = client.head(_resolve(hub, "nope"))
    bad_rev = client.get(f"{hub.endpoint}/api/models/{REPO}/revision/nope")
    no_repo = client.get(f"{hub.endpoint}/api/models/acme/none")

    assert (missing.status_code, missing.headers["x-error-code"]) == (404, "EntryNotFound")
    assert missing.headers["x-repo-commit"] == hub.repo(REPO).head.sha
    assert (bad_rev.status_code, bad_rev.headers["x-error-code"]) == (404, "RevisionNotFound")
    assert (no_repo.status_code, no_repo.headers["x-error-code"]) == (401, "RepoNotFound")
    assert no_repo.json() == {"error": "Repository not found"}


def test_single_segment_repo_ids(local_hub: LocalHub, client: httpx.Client) -> None:
    local_hub.create_repo("gpt-tiny", {"config.json": b"{}"})

    info = client.get(f"{local_hub.endpoint}/api/models/gpt-tiny").json()
    body = client.get(f"{local_hub.endpoint}/gpt-tiny/resolve/main/config.json").content

    assert info["id"] == "gpt-tiny"
    assert body == b"{}"


def test_requests_are_recorded_with_headers_status_and_bytes(
    hub: LocalHub, client: httpx.Client
) -> None:
    hub.add_token("x")
    client.get(
        _resolve(hub, "notes.dat"), headers={"Authorization": "Bearer x", "Range": "bytes=0-3"}
    )

    (record,) = hub.requests
    assert (record.server, record.method, record.status) == ("hub", "GET", 206)
    assert record.authorization == "Bearer x"
    assert record.range == "bytes=0-3"
    assert record.bytes_sent == 4
    assert (record.repo, record.filename) == (REPO, "notes.dat")
    hub.reset()
    assert len(hub.requests) == 0


def test_json_api_is_gzipped_when_accepted(local_hub: LocalHub, client: httpx.Client) -> None:
    local_hub.create_repo(REPO, {f"file-{i:03d}.txt": b"x" for i in range(60)})

    r = client.get(f"{local_hub.endpoint}/api/models/{REPO}/tree/main")

    assert r.headers["content-encoding"] == "gzip"
    assert len(r.json()) == 60

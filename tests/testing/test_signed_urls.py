"""Signed CDN URLs of the local hub: what the redirect carries, what the CDNs refuse, and
that huggingface_hub's own client still downloads through them."""

from __future__ import annotations

import hashlib
import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from huggingface_hub import hf_hub_download

from modeldepot.testing import LocalHub, Throttle, write_random_file
from modeldepot.testing.faults import Delay
from tests.support import until_blocking

REPO = "acme/signed"
LFS = "model.safetensors"
SIZE = 300_000


@pytest.fixture
def data(tmp_path: Path) -> bytes:
    return write_random_file(tmp_path / "blob.bin", SIZE, seed=5).read_bytes()


@pytest.fixture
def signing_hub(tmp_path: Path, data: bytes) -> Iterator[LocalHub]:
    with LocalHub(tmp_path / "hub", signed_url_ttl=600) as hub:
        hub.create_repo(REPO, {LFS: data, "config.json": b"{}"})
        yield hub


def redirect_location(hub: LocalHub, path: str = LFS) -> str:
    response = httpx.head(f"{hub.endpoint}/{REPO}/resolve/main/{path}")
    assert response.status_code == 302
    return response.headers["location"]


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        name = key.replace("_", "-")
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def assert_refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/xml")
    if response.request.method == "HEAD":
        return  # no body to say why
    assert "<Code>AccessDenied</Code>" in response.text
    assert f"<Message>{message}</Message>" in response.text


def test_lfs_redirects_are_signed_and_served_from_both_cdns(
    signing_hub: LocalHub, data: bytes
) -> None:
    issued_after = time.time()
    location = redirect_location(signing_hub)
    issued_before = time.time()

    query = parse_qs(urlsplit(location).query)
    assert set(query) >= {"Expires", "Signature", "Key-Pair-Id", "repo", "file"}
    expires = int(query["Expires"][0])
    # The TTL (600 s) from the moment of signing, rounded up to a whole second; the
    # moment is bracketed by the clock read around the request, however long it took.
    assert math.ceil(issued_after + 600) <= expires <= math.ceil(issued_before + 600)
    assert httpx.get(location).content == data
    mirrored = location.replace(signing_hub.cdn_url, signing_hub.mirror_url)
    assert httpx.get(mirrored, headers={"Range": "bytes=10-19"}).content == data[10:20]


def test_unsigned_missing_or_tampered_urls_are_refused(signing_hub: LocalHub) -> None:
    location = redirect_location(signing_hub)
    signature = parse_qs(urlsplit(location).query)["Signature"][0]
    forged = ("A" if signature[0] != "A" else "B") + signature[1:]

    assert_refused(httpx.get(with_query(location, Signature=forged)), "Access denied")
    assert_refused(httpx.get(with_query(location, Signature=None)), "Access denied")
    later = str(int(time.time()) + 10_000)
    assert_refused(httpx.get(with_query(location, Expires=later)), "Access denied")
    assert_refused(httpx.get(with_query(location, file="other.bin")), "Access denied")
    sha = hashlib.sha256(b"").hexdigest()
    assert_refused(httpx.get(f"{signing_hub.cdn_url}/blobs/{sha}"), "Access denied")


def test_expire_signed_urls_retires_every_url_issued_so_far(
    signing_hub: LocalHub, data: bytes
) -> None:
    old = redirect_location(signing_hub)
    assert httpx.head(old).status_code == 200

    signing_hub.expire_signed_urls()

    assert_refused(httpx.get(old, headers={"Range": "bytes=0-9"}), "Request has expired")
    assert_refused(httpx.head(old), "Request has expired")
    fresh = redirect_location(signing_hub)
    assert fresh != old
    assert httpx.get(fresh).content == data


def test_urls_expire_after_their_ttl(signing_hub: LocalHub) -> None:
    signing_hub.signed_url_ttl = 1
    location = redirect_location(signing_hub)
    assert httpx.head(location).status_code == 200
    expires = int(parse_qs(urlsplit(location).query)["Expires"][0])

    # Expires has whole seconds: the URL is valid until that second has passed. What is
    # waited for is the clock passing it (the TTL is one), not a guess at how long.
    until_blocking(lambda: time.time() > expires + 0.05, what="the URL's Expires passing")

    assert_refused(httpx.head(location), "Request has expired")


def test_a_response_already_streaming_continues_after_expiry(
    signing_hub: LocalHub, data: bytes
) -> None:
    signing_hub.faults.add(Throttle(bytes_per_second=400_000), server="cdn", times=1)
    location = redirect_location(signing_hub)
    received = bytearray()
    with httpx.stream("GET", location) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        received += next(chunks)
        signing_hub.expire_signed_urls()
        for chunk in chunks:
            received += chunk
    assert bytes(received) == data
    assert_refused(httpx.head(location), "Request has expired")


def test_hf_hub_download_works_against_a_signing_hub(
    signing_hub: LocalHub, data: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    signing_hub.expire_signed_urls()  # whatever was issued before does not matter

    path = hf_hub_download(
        REPO, LFS, cache_dir=tmp_path / "cache", endpoint=signing_hub.endpoint, token=False
    )

    assert Path(path).read_bytes() == data
    (cdn,) = signing_hub.requests.filter(server="cdn", method="GET")
    assert cdn.status == 200
    assert "Signature=" in cdn.query


def test_signing_is_off_by_default_and_can_be_switched(local_hub: LocalHub, data: bytes) -> None:
    local_hub.create_repo(REPO, {LFS: data})
    plain = redirect_location(local_hub)
    assert "Signature" not in plain
    assert httpx.get(plain).content == data
    local_hub.expire_signed_urls()  # no effect while nothing is signed
    assert httpx.get(plain).status_code == 200

    local_hub.signed_url_ttl = 60

    assert_refused(httpx.get(plain), "Access denied")
    assert httpx.get(redirect_location(local_hub)).content == data


def test_delay_fault_holds_the_answer_back(signing_hub: LocalHub) -> None:
    # Far longer than the test may run: stopping the hub ends it.
    signing_hub.faults.add(Delay(seconds=600), server="hub", method="HEAD", times=1)
    endpoint = urlsplit(signing_hub.endpoint)
    request = f"HEAD /{REPO}/resolve/main/{LFS} HTTP/1.1\r\nHost: {endpoint.netloc}\r\n\r\n"
    with socket.create_connection((endpoint.hostname, endpoint.port), timeout=10) as slow:
        slow.sendall(request.encode())
        until_blocking(
            lambda: signing_hub.requests.filter(server="hub", method="HEAD"),
            what="the delayed HEAD reaching the hub",
        )

        fast = redirect_location(signing_hub)  # asked later, answered first: the marker

        delayed = signing_hub.requests.filter(server="hub", method="HEAD")[0]
        assert delayed.status is None  # not answered yet
        slow.setblocking(False)
        with pytest.raises(BlockingIOError):
            slow.recv(1)  # not a byte of an answer, and the connection still open
    assert "Signature=" in fast


def test_a_short_delay_then_answers_as_usual(signing_hub: LocalHub) -> None:
    signing_hub.faults.add(Delay(seconds=0.05), server="hub", method="HEAD", times=1)

    slow = redirect_location(signing_hub)

    assert "Signature=" in slow
    assert signing_hub.requests.filter(server="hub", method="HEAD")[0].status == 302


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), 8 * 24 * 3600])
def test_ttl_out_of_range_is_refused(ttl: float, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="signed_url_ttl"):
        LocalHub(tmp_path / "hub", signed_url_ttl=ttl)

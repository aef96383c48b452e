"""Each fault kind really happens on the wire."""

from __future__ import annotations

import gzip
import hashlib
import random
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
import pytest

from modeldepot.testing import (
    ChangeETag,
    CutBody,
    ExtraBytes,
    GzipBomb,
    IgnoreRange,
    LocalHub,
    RecordedRequest,
    Redirect,
    Stall,
    Status,
    Throttle,
    Trickle,
    WrongBytes,
    WrongContentRange,
)

REPO = "acme/faulty"
DATA = random.Random(7).randbytes(200 * 1024)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def hub(local_hub: LocalHub) -> LocalHub:
    local_hub.create_repo(REPO, {"model.safetensors": DATA, "config.json": b"{}"})
    return local_hub


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def _blob(hub: LocalHub) -> str:
    return f"{hub.cdn_url}/blobs/{SHA}"


def _read_until_error(client: httpx.Client, url: str) -> tuple[httpx.Response, bytes]:
    got = bytearray()
    responses: list[httpx.Response] = []

    def consume() -> None:
        with client.stream("GET", url) as response:
            responses.append(response)
            for chunk in response.iter_raw():
                got.extend(chunk)

    with pytest.raises(httpx.RemoteProtocolError):
        consume()
    return responses[0], bytes(got)


def test_ignore_range_answers_200_with_the_full_body(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(IgnoreRange(), server="cdn", times=1)

    ignored = client.get(_blob(hub), headers={"Range": "bytes=100-"})
    honoured = client.get(_blob(hub), headers={"Range": "bytes=100-"})

    assert (ignored.status_code, ignored.content) == (200, DATA)
    assert (honoured.status_code, honoured.content) == (206, DATA[100:])


def test_wrong_bytes_flips_bytes_at_file_offsets(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(WrongBytes(offsets=(0, 1000)), server="cdn")

    full = client.get(_blob(hub))
    ranged = client.get(_blob(hub), headers={"Range": "bytes=500-"})

    assert len(full.content) == len(DATA)
    assert full.headers["etag"] == f'"{SHA}"'
    assert [i for i in range(len(DATA)) if full.content[i] != DATA[i]] == [0, 1000]
    assert ranged.content[500] == DATA[1000] ^ 0xFF
    assert ranged.content[:500] == DATA[500:1000]


def test_cut_body_closes_the_connection_with_content_length(
    hub: LocalHub, client: httpx.Client
) -> None:
    hub.faults.add(CutBody(after_bytes=1000), filename="model.safetensors", times=1)

    response, got = _read_until_error(client, _blob(hub) + "?file=model.safetensors")

    assert response.headers["content-length"] == str(len(DATA))
    assert got == DATA[:1000]
    (record,) = hub.requests
    assert (record.bytes_sent, record.completed) == (1000, False)
    assert client.get(_blob(hub)).content == DATA  # times=1: next request is fine


def test_cut_body_chunked_never_sends_the_last_chunk(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(CutBody(after_bytes=4096, chunked=True), server="cdn")

    response, got = _read_until_error(client, _blob(hub))

    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert got == DATA[:4096]


def test_status_with_retry_after_in_seconds_and_as_http_date(
    hub: LocalHub, client: httpx.Client
) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    hub.faults.add(Status(503, retry_after=7), server="hub", path="/api/*", times=1)
    hub.faults.add(Status(429, retry_after=when), server="cdn", times=1)
    info_url = f"{hub.endpoint}/api/models/{REPO}"

    unavailable = client.get(info_url)
    limited = client.get(_blob(hub))

    assert (unavailable.status_code, unavailable.headers["retry-after"]) == (503, "7")
    assert "error" in unavailable.json()
    assert limited.status_code == 429
    assert parsedate_to_datetime(limited.headers["retry-after"]) == when
    assert client.get(info_url).status_code == 200


def test_status_can_impersonate_hub_errors(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(Status(403, error_code="GatedRepo"), method="HEAD")

    r = client.head(f"{hub.endpoint}/{REPO}/resolve/main/config.json")

    assert (r.status_code, r.headers["x-error-code"]) == (403, "GatedRepo")


def _held_back_after(hub: LocalHub, client: httpx.Client, expected: bytes) -> tuple[int, bool]:
    """Stream the blob until ``expected`` (its first bytes) arrived, then have the hub serve
    a whole other request: the marker that it is answering, not slow. Return the first
    request's bytes sent and whether it completed, taken while its response is open."""
    got = b""
    with client.stream("GET", _blob(hub)) as response:
        for chunk in response.iter_raw():
            got += chunk
            if len(got) >= len(expected):
                break
        assert got == expected
        assert httpx.get(_blob(hub), timeout=10).content == DATA  # the marker
        first = hub.requests.filter(server="cdn", method="GET")[0]
        return first.bytes_sent, first.completed


def test_stall_sends_its_bytes_then_holds_the_rest_back(
    hub: LocalHub, client: httpx.Client
) -> None:
    # Far longer than the test may run: stopping the hub ends it (test_lifecycle.py).
    hub.faults.add(Stall(after_bytes=1000, seconds=600), server="cdn", times=1)

    sent, completed = _held_back_after(hub, client, DATA[:1000])

    # Another request was served from start to end meanwhile; this one sent no more.
    assert sent == 1000
    assert not completed


def test_stall_then_carries_on_to_the_end(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(Stall(after_bytes=1000, seconds=0.05), server="cdn")

    r = client.get(_blob(hub))

    assert r.content == DATA


def test_trickle_sends_one_small_chunk_then_waits(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(Trickle(bytes_per_chunk=100, interval_s=600), server="cdn", times=1)

    sent, completed = _held_back_after(hub, client, DATA[:100])

    assert sent == 100
    assert not completed


def test_trickle_delivers_the_whole_range(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(Trickle(bytes_per_chunk=100, interval_s=0.001), server="cdn")

    r = client.get(_blob(hub), headers={"Range": "bytes=0-999"})

    assert r.content == DATA[:1000]


def test_throttle_holds_the_body_back(hub: LocalHub, client: httpx.Client) -> None:
    # 20 B/s: one byte per write, and 200 KB would take almost three hours.
    hub.faults.add(Throttle(bytes_per_second=20), server="cdn", times=1)

    sent, completed = _held_back_after(hub, client, DATA[:1])

    # However slow this machine, the test ends long before a tenth of the body is due.
    assert sent < len(DATA) // 10
    assert not completed


def test_throttle_delivers_every_byte(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(Throttle(bytes_per_second=4_000_000), server="cdn")

    r = client.get(_blob(hub))

    assert r.content == DATA


def test_change_etag_makes_if_range_fail_and_content_differ(
    hub: LocalHub, client: httpx.Client
) -> None:
    original = client.head(_blob(hub)).headers["etag"]
    hub.faults.add(ChangeETag(etag="v2"), server="cdn")

    r = client.get(_blob(hub), headers={"Range": "bytes=1000-", "If-Range": original})

    assert r.status_code == 200
    assert r.headers["etag"] == '"v2"'
    assert len(r.content) == len(DATA)
    assert r.content[0] == DATA[0] ^ 0xFF
    assert r.content[1:] == DATA[1:]


def test_extra_bytes_counted_in_content_length(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(ExtraBytes(n=5), server="cdn")

    declared = client.head(f"{hub.endpoint}/{REPO}/resolve/main/model.safetensors")
    r = client.get(_blob(hub))

    assert int(declared.headers["x-linked-size"]) == len(DATA)
    assert r.headers["content-length"] == str(len(DATA) + 5)
    assert r.content[: len(DATA)] == DATA
    assert len(r.content) == len(DATA) + 5


def test_extra_bytes_chunked(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(ExtraBytes(n=7, mode="chunked"), server="cdn")

    r = client.get(_blob(hub))

    assert "content-length" not in r.headers
    assert len(r.content) == len(DATA) + 7


def test_extra_bytes_past_content_length_on_the_socket(hub: LocalHub) -> None:
    hub.faults.add(ExtraBytes(n=9, mode="past_content_length"), server="hub")
    port = urlsplit(hub.endpoint).port
    assert port is not None

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /{REPO}/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk

    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"content-length: 2" in head.lower()
    assert body[:2] == b"{}"
    assert len(body) == 2 + 9


def test_wrong_content_range_shifts_the_header_only(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(WrongContentRange(shift=1), server="cdn")

    r = client.get(_blob(hub), headers={"Range": "bytes=100-199"})

    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 101-200/{len(DATA)}"
    assert r.content == DATA[100:200]


def test_redirect_to_another_host(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(Redirect(location=f"{hub.mirror_url}/blobs/{SHA}"), server="cdn", times=1)

    r = client.get(_blob(hub), follow_redirects=True)

    assert r.content == DATA
    assert [q.server for q in hub.requests] == ["cdn", "mirror"]


def test_redirect_loop(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(Redirect(location=f"/blobs/{SHA}"), server="cdn")

    with pytest.raises(httpx.TooManyRedirects):
        client.get(_blob(hub), follow_redirects=True)


def test_gzip_bomb_on_a_json_endpoint(hub: LocalHub, client: httpx.Client) -> None:
    hub.faults.add(GzipBomb(inflated_size=8 * 1024 * 1024), path="/api/*")

    with client.stream("GET", f"{hub.endpoint}/api/models/{REPO}") as r:
        raw = b"".join(r.iter_raw())

    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"] == "application/json"
    assert len(raw) < 64 * 1024
    assert len(gzip.decompress(raw)) == 8 * 1024 * 1024


def test_on_request_hook_adds_faults(hub: LocalHub, client: httpx.Client) -> None:
    seen: list[RecordedRequest] = []

    def hook(request: RecordedRequest) -> Status | None:
        seen.append(request)
        return Status(418) if request.filename == "config.json" else None

    hub.on_request = hook

    assert client.get(f"{hub.endpoint}/{REPO}/resolve/main/config.json").status_code == 418
    assert client.get(_blob(hub)).status_code == 200
    assert len(seen) == 2


def test_rules_match_and_count_only_requests_they_can_act_on(
    hub: LocalHub, client: httpx.Client
) -> None:
    rule = hub.faults.add(CutBody(after_bytes=10), filename="config.json", times=1)
    ranged = hub.faults.add(IgnoreRange(), times=1)

    client.head(f"{hub.endpoint}/{REPO}/resolve/main/config.json")  # HEAD: no body to cut
    client.get(_blob(hub))  # other file, no Range

    assert (rule.hits, ranged.hits) == (0, 0)
    hub.reset()
    assert hub.faults.rules == []

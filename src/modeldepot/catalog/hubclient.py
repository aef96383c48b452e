"""huggingface_hub's HTTP client, hardened for hub metadata (RELIABILITY.md item 21).

huggingface_hub shares one ``httpx2.Client`` per process; ``install_guarded_client``
replaces its factory with one whose transport asks for ``Accept-Encoding: identity``,
refuses any other encoding before reading a byte (no gzip bomb is ever inflated), and
stops reading an answer after ``MAX_METADATA_BYTES``. It is process-wide by nature (the
library holds it), so the composition root installs it once at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
from huggingface_hub import set_client_factory

MAX_METADATA_BYTES = 64 * 1024 * 1024


class MetadataTooLarge(httpx2.DecodingError):
    """A hub API answer larger than any real one (or a compressed one): refused."""


class _CappedStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise MetadataTooLarge(f"hub answer larger than {self._limit} bytes")
            yield chunk

    def close(self) -> None:
        self._inner.close()


class GuardedTransport(httpx2.HTTPTransport):
    def __init__(self, *, limit: int = MAX_METADATA_BYTES) -> None:
        super().__init__()
        self._limit = limit

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = super().handle_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", ""):
            response.close()
            raise MetadataTooLarge(
                f"hub answered with Content-Encoding {encoding}", request=request
            )
        if isinstance(response.stream, httpx2.SyncByteStream):
            response.stream = _CappedStream(response.stream, self._limit)
        return response


def guarded_client() -> httpx2.Client:
    return httpx2.Client(transport=GuardedTransport(), follow_redirects=True, timeout=None)


def install_guarded_client() -> None:
    set_client_factory(guarded_client)

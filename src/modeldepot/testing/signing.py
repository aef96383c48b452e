"""Signed CDN URLs of the local hub, CloudFront-style, that expire.

The real hub redirects LFS files to CDN URLs carrying ``Expires=<unix>``, a ``Signature``
and a ``Key-Pair-Id``; after about an hour the CDN answers 403 ``AccessDenied``
"Request has expired". With ``LocalHub(signed_url_ttl=...)`` the local hub does the same:
the hub signs each redirect (HMAC-SHA256 over the path, the other query parameters, the
expiry and the key id, with a per-hub secret) and the CDN and the mirror check the
signature when a request starts (a response already streaming continues, as a real
CDN's does). ``expire_all`` retires the signing key, so every URL issued so far is
refused from then on: tests force expiries at points they control instead of racing
the clock. Without a TTL nothing is signed or checked (the default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from urllib.parse import parse_qsl, urlencode

EXPIRES = "Expires"
SIGNATURE = "Signature"
KEY_PAIR_ID = "Key-Pair-Id"
_SIGNED_PARAMS = frozenset({EXPIRES, SIGNATURE, KEY_PAIR_ID})
MAX_TTL_S = 7 * 24 * 3600.0  # S3's limit for presigned URLs


class UrlSigner:
    """Signs and checks CDN URLs for one local hub; thread-safe.

    Args:
        ttl: seconds a signed URL stays valid (rounded up to whole seconds, as
            ``Expires`` is); None signs nothing.

    Raises:
        ValueError: ``ttl`` is not a finite number in (0, 7 days].
    """

    def __init__(self, ttl: float | None = None) -> None:
        self._secret = secrets.token_bytes(32)
        self._epoch = 0
        self._lock = threading.Lock()
        self._ttl: float | None = None
        self.ttl = ttl

    @property
    def ttl(self) -> float | None:
        return self._ttl

    @ttl.setter
    def ttl(self, value: float | None) -> None:
        if value is not None and not (0 < value <= MAX_TTL_S and math.isfinite(value)):
            raise ValueError(f"signed_url_ttl must be in (0, {MAX_TTL_S:g}] seconds: {value!r}")
        self._ttl = value

    @property
    def enabled(self) -> bool:
        return self._ttl is not None

    def expire_all(self) -> None:
        """Retire the key: every URL signed so far is refused as expired from now on."""
        with self._lock:
            self._epoch += 1

    def sign(self, path: str, params: dict[str, str]) -> str:
        """The query string for ``path`` with ``params`` plus, when enabled, the signature."""
        ttl = self._ttl
        if ttl is None:
            return urlencode(params)
        with self._lock:
            epoch = self._epoch
        expires = str(math.ceil(time.time() + ttl))
        key_id = _key_id(epoch)
        signature = self._signature(epoch, path, list(params.items()), expires, key_id)
        signed = {**params, EXPIRES: expires, SIGNATURE: signature, KEY_PAIR_ID: key_id}
        return urlencode(signed)

    def refusal(self, path: str, query: str) -> str | None:
        """Why a request for ``path?query`` is refused ("Request has expired", "Access
        denied"), or None when it may be served (always, when signing is off)."""
        if self._ttl is None:
            return None
        pairs = parse_qsl(query, keep_blank_values=True)
        signed = {k: v for k, v in pairs if k in _SIGNED_PARAMS}
        expires, key_id = signed.get(EXPIRES, ""), signed.get(KEY_PAIR_ID, "")
        if not expires.isdigit() or SIGNATURE not in signed:
            return "Access denied"
        with self._lock:
            epoch = self._epoch
        if key_id != _key_id(epoch):
            # A retired key: what expire_all() means (an unknown id is refused the same way).
            return "Request has expired"
        others = [(k, v) for k, v in pairs if k not in _SIGNED_PARAMS]
        expected = self._signature(epoch, path, others, expires, key_id)
        if not hmac.compare_digest(expected, signed[SIGNATURE]):
            return "Access denied"
        if time.time() > int(expires):
            return "Request has expired"
        return None

    def _signature(
        self, epoch: int, path: str, params: list[tuple[str, str]], expires: str, key_id: str
    ) -> str:
        key = hmac.new(self._secret, str(epoch).encode(), hashlib.sha256).digest()
        canonical = "\n".join([path, *(f"{k}={v}" for k, v in sorted(params)), expires, key_id])
        digest = hmac.new(key, canonical.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _key_id(epoch: int) -> str:
    return f"KLOCALHUB{epoch:06d}"

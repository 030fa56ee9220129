"""HMAC-SHA256 signatures on HTTP requests between the fleet and the governance platform, both ways.

The sender signs ``v1``, the timestamp, the method, the request target and the SHA-256 of the body,
one per line, with a shared secret, and sends two headers::

    X-Outpost-Timestamp: 1700000000000          (UTC epoch milliseconds)
    X-Outpost-Signature: v1=<64 hex digits>

The request target is the path and query exactly as they travel on the wire (percent-encoding kept):
httpx's ``URL.raw_path``, ASGI's ``raw_path`` plus ``?query_string``, aiohttp's ``raw_path``. Signing
the target as sent, not as a framework decoded it, means both sides hash the same bytes.

The receiver accepts a request when some secret it holds (several during a key rotation: the new one
and the old one) produces one of the header's ``v1=`` signatures, compared in constant time, and the
timestamp lies within the replay window of its own clock. A :class:`RequestVerifier` with
``remember_signatures`` also refuses an exact replay inside that window; the sender signs every
attempt afresh, so its retries are new requests. Nothing here imports another Outpost package.
"""

import hashlib
import hmac
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from protocol.errors import (
    BadRequestSignatureError,
    ReplayedRequestError,
    RequestTimestampError,
    SigningSecretError,
    UnsignedRequestError,
)

TIMESTAMP_HEADER: Final = "X-Outpost-Timestamp"
SIGNATURE_HEADER: Final = "X-Outpost-Signature"
SIGNATURE_SCHEME: Final = "v1"
DEFAULT_REPLAY_WINDOW_S: Final = 300.0

Secret = str | bytes
"""A shared signing secret; text is used as its UTF-8 bytes."""

_METHOD_RE: Final = re.compile(r"^[A-Z]{1,16}$")
_TIMESTAMP_RE: Final = re.compile(r"^[0-9]{1,16}$")
_HEX_SIGNATURE_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_MAX_SIGNATURES: Final = 8
_MAX_REMEMBERED: Final = 100_000


def _secret_bytes(secret: Secret) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise SigningSecretError("a request-signing secret must not be empty")
    return key


def _secret_list(secrets: Secret | Sequence[Secret]) -> tuple[bytes, ...]:
    keys = (_secret_bytes(secrets),) if isinstance(secrets, str | bytes) else tuple(_secret_bytes(s) for s in secrets)
    if not keys:
        raise SigningSecretError("verifying a request needs at least one secret")
    return keys


def _check_target(path: str) -> None:
    if not path.startswith("/") or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in path):
        raise ValueError(f"the signed request target must start with '/' and hold no whitespace: {path[:80]!r}")


def canonical_request(method: str, path: str, timestamp_ms: int, body: bytes) -> bytes:
    """The bytes a signature covers: scheme, timestamp, method, target and body digest, one per line."""
    if not _METHOD_RE.fullmatch(method):
        raise ValueError(f"an HTTP method is upper-case letters, got {method[:20]!r}")
    _check_target(path)
    if not 0 <= timestamp_ms < 10**16:
        raise ValueError(f"the timestamp must be non-negative epoch milliseconds, got {timestamp_ms}")
    digest = hashlib.sha256(body).hexdigest()
    return f"{SIGNATURE_SCHEME}\n{timestamp_ms}\n{method}\n{path}\n{digest}".encode()


def sign(secret: Secret, method: str, path: str, timestamp_ms: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of the request under ``secret`` (the part after ``v1=`` in the header)."""
    canonical = canonical_request(method, path, timestamp_ms, body)
    return hmac.new(_secret_bytes(secret), canonical, hashlib.sha256).hexdigest()


def asgi_request_target(raw_path: bytes, query_string: bytes = b"") -> str:
    """The signed target of a request an ASGI server received: ``scope["raw_path"]`` and ``scope["query_string"]``."""
    target = raw_path.decode("latin-1")
    return f"{target}?{query_string.decode('latin-1')}" if query_string else target


def signature_headers(secret: Secret, method: str, path: str, timestamp_ms: int, body: bytes) -> dict[str, str]:
    """The two headers to send with a request signed by ``secret`` at ``timestamp_ms``."""
    signature = sign(secret, method, path, timestamp_ms, body)
    return {TIMESTAMP_HEADER: str(timestamp_ms), SIGNATURE_HEADER: f"{SIGNATURE_SCHEME}={signature}"}


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """What verification established: when the sender signed, and which accepted secret matched."""

    timestamp_ms: int
    signature: str
    secret_index: int
    """Index of the matching secret in the list given: non-zero means the sender still uses an old key."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``name``'s value from plain dicts as well as case-insensitive header mappings."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def _offered_signatures(header: str) -> list[str]:
    offered = []
    for entry in header.split(",")[:_MAX_SIGNATURES]:
        scheme, separator, value = entry.strip().partition("=")
        if separator and scheme == SIGNATURE_SCHEME:
            if not _HEX_SIGNATURE_RE.fullmatch(value):
                raise BadRequestSignatureError(f"{SIGNATURE_HEADER} {SIGNATURE_SCHEME}= must be 64 hex digits")
            offered.append(value)
    if not offered:
        raise BadRequestSignatureError(f"{SIGNATURE_HEADER} carries no '{SIGNATURE_SCHEME}=<hex>' signature")
    return offered


def verify(
    secrets: Secret | Sequence[Secret],
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now_ms: int,
    replay_window_s: float = DEFAULT_REPLAY_WINDOW_S,
) -> VerifiedRequest:
    """Check a received request's signature headers; raise a :class:`~protocol.errors.RequestSignatureError`.

    ``path`` is the request target as received (see the module docstring). The signature is checked
    before the timestamp's age, so a stale request with a valid signature reports the window, and a
    forged one reports the signature.
    """
    keys = _secret_list(secrets)
    timestamp_text = _header(headers, TIMESTAMP_HEADER)
    signature_text = _header(headers, SIGNATURE_HEADER)
    missing = [
        name for name, value in ((TIMESTAMP_HEADER, timestamp_text), (SIGNATURE_HEADER, signature_text)) if not value
    ]
    if missing:
        raise UnsignedRequestError(f"the request is not signed: send {' and '.join(missing)}")
    assert timestamp_text is not None
    assert signature_text is not None
    if not _TIMESTAMP_RE.fullmatch(timestamp_text.strip()):
        raise RequestTimestampError(f"{TIMESTAMP_HEADER} must be UTC epoch milliseconds, got {timestamp_text[:32]!r}")
    timestamp_ms = int(timestamp_text.strip())
    offered = _offered_signatures(signature_text)
    try:
        canonical = canonical_request(method, path, timestamp_ms, body)
    except ValueError as exc:
        raise BadRequestSignatureError(f"the request cannot be verified: {exc}") from None
    match: tuple[int, str] | None = None
    for index, key in enumerate(keys):
        expected = hmac.new(key, canonical, hashlib.sha256).hexdigest()
        for candidate in offered:
            if hmac.compare_digest(expected, candidate) and match is None:
                match = (index, candidate)
    if match is None:
        raise BadRequestSignatureError(
            "the signature does not match the request under any accepted secret "
            "(wrong secret, or the body, target or timestamp changed)"
        )
    skew_ms = now_ms - timestamp_ms
    if abs(skew_ms) > replay_window_s * 1000:
        direction = "old" if skew_ms > 0 else "in the future"
        raise RequestTimestampError(
            f"the request was signed {abs(skew_ms) / 1000:.1f} s {'ago' if skew_ms > 0 else 'ahead'}: "
            f"too {direction} for the {replay_window_s:g} s replay window (replayed, or a clock is off)"
        )
    index, signature = match
    return VerifiedRequest(timestamp_ms=timestamp_ms, signature=signature, secret_index=index)


class RequestVerifier:
    """Verifies requests with a fixed set of secrets; optionally refuses a signature seen before.

    With ``remember_signatures`` every accepted signature is kept until it falls out of the replay
    window (and at most ``_MAX_REMEMBERED`` of them), so the exact same signed request cannot be
    accepted twice. One instance per receiving service; not thread-safe (one event loop).
    """

    def __init__(
        self,
        secrets: Secret | Sequence[Secret],
        *,
        replay_window_s: float = DEFAULT_REPLAY_WINDOW_S,
        remember_signatures: bool = True,
    ) -> None:
        self._secrets = _secret_list(secrets)
        self.replay_window_s = replay_window_s
        self._remember = remember_signatures
        self._seen: OrderedDict[str, int] = OrderedDict()

    def verify(self, headers: Mapping[str, str], method: str, path: str, body: bytes, now_ms: int) -> VerifiedRequest:
        verified = verify(self._secrets, headers, method, path, body, now_ms, self.replay_window_s)
        if self._remember:
            self._forget_older_than(now_ms - int(self.replay_window_s * 1000))
            if verified.signature in self._seen:
                raise ReplayedRequestError("this signed request was already accepted: sign every attempt afresh")
            self._seen[verified.signature] = verified.timestamp_ms
            while len(self._seen) > _MAX_REMEMBERED:
                self._seen.popitem(last=False)
        return verified

    def _forget_older_than(self, oldest_ms: int) -> None:
        # Insertion order is close to timestamp order; stop at the first one still inside the window.
        while self._seen:
            signature, timestamp_ms = next(iter(self._seen.items()))
            if timestamp_ms >= oldest_ms:
                return
            del self._seen[signature]

"""Gateways' HTTPS requests to the fleet, signed with the Ed25519 key each made at enrollment.

A gateway already has an identity the fleet knows: the key pair it made at enrollment, whose public half the
fleet keeps in its registry. It signs each request (a download of a release, today) with it and sends::

    Authorization: Outpost-Gateway gateway=<gateway id>,ts=<UTC epoch ms>,sig=<base64url Ed25519 signature>

The signature covers the canonical JSON (:func:`protocol.config_signing.canonical_bytes`) of::

    {"purpose": "outpost/gateway-request/v1", "gateway_id": ..., "method": "GET", "target": "/path?query", "ts": ...}

so it is good for one gateway, one method and one request target (the path and query as sent, see
:func:`protocol.request_signing.asgi_request_target`), and for :data:`REPLAY_WINDOW_MS` around ``ts`` by the
fleet's clock. Only reads are signed this way (no body is covered): replaying one inside the window fetches
the same bytes again, which the gateway could anyway. Nothing here imports another Outpost package.
"""

import re
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.config_signing import sign_document, verify_document
from protocol.errors import ConfigSignatureError, GatewayRequestError
from protocol.identifiers import IDENTIFIER_PATTERN

SCHEME: Final = "Outpost-Gateway"
PURPOSE: Final = "outpost/gateway-request/v1"
REPLAY_WINDOW_MS: Final = 300_000
_HEADER: Final = re.compile(
    rf"^{SCHEME} gateway=(?P<gateway>{IDENTIFIER_PATTERN[1:-1]}),"
    r"ts=(?P<ts>[0-9]{1,16}),sig=(?P<sig>[A-Za-z0-9_-]{86})$"
)
_MAX_TARGET: Final = 4096


@dataclass(frozen=True, slots=True)
class GatewayCredentials:
    """What an ``Outpost-Gateway`` authorization says: who, when, and the signature."""

    gateway_id: str
    ts_ms: int
    signature: str


def _document(gateway_id: str, method: str, target: str, ts_ms: int) -> dict[str, object]:
    return {"purpose": PURPOSE, "gateway_id": gateway_id, "method": method.upper(), "target": target, "ts": ts_ms}


def authorization(private_key: Ed25519PrivateKey, gateway_id: str, method: str, target: str, now_ms: int) -> str:
    """The ``Authorization`` header value for ``method target`` sent by ``gateway_id`` now."""
    signature = sign_document(private_key, _document(gateway_id, method, target, now_ms))
    return f"{SCHEME} gateway={gateway_id},ts={now_ms},sig={signature}"


def is_gateway_authorization(header: str) -> bool:
    return header.startswith(f"{SCHEME} ")


def parse_authorization(header: str) -> GatewayCredentials:
    found = _HEADER.fullmatch(header.strip())
    if found is None:
        raise GatewayRequestError(f"not an {SCHEME} authorization (gateway=<id>,ts=<ms>,sig=<signature>)")
    return GatewayCredentials(found.group("gateway"), int(found.group("ts")), found.group("sig"))


def verify_request(
    public_key: Ed25519PublicKey, credentials: GatewayCredentials, method: str, target: str, now_ms: int
) -> None:
    """Return if ``credentials`` sign ``method target`` with ``public_key`` inside the replay window."""
    if abs(now_ms - credentials.ts_ms) > REPLAY_WINDOW_MS:
        raise GatewayRequestError(
            f"the request was signed {abs(now_ms - credentials.ts_ms) / 1000:.0f} s away from the fleet's clock "
            f"(at most {REPLAY_WINDOW_MS // 1000} s): is the gateway's clock right?"
        )
    if len(target) > _MAX_TARGET:
        raise GatewayRequestError("the request target is too long to be signed")
    try:
        verify_document(
            public_key, _document(credentials.gateway_id, method, target, credentials.ts_ms), credentials.signature
        )
    except ConfigSignatureError:
        raise GatewayRequestError(f"the signature is not gateway {credentials.gateway_id}'s") from None

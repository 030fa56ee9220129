"""Ed25519 signatures over the commands the fleet sends gateways, with the fleet's config-signing key.

A command signature covers deterministic JSON (:func:`protocol.config_signing.canonical_bytes`) of

    {"purpose": "outpost/command/v1", "gateway_id": ..., "request_id": ..., "event_id": ..., "name": ...,
     "args": ..., "requested_by": ..., "reason": ..., "ts": ..., "timeout_s": ...}

plus ``"attachment_sha256"`` (hex) for a command with an attachment, so the bytes it carries are covered too
(a command without one signs the same document as before attachments existed)

so it binds one command to one gateway, one request id and its expiry (``ts + timeout_s``): another
gateway, a changed argument or a later date no longer verifies, and a replay of the same command is
refused by the gateway's memory of request ids, kept until they expire. The purpose string keeps these
bytes apart from a config's, though the same key signs both.
"""

import hashlib
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.config_signing import sign_document, verify_document
from protocol.messages import Command

COMMAND_SIGNATURE_PURPOSE: Final = "outpost/command/v1"


def command_document(command: Command) -> dict[str, object]:
    """What a command signature covers: everything the gateway acts on, and when it expires."""
    document: dict[str, object] = {
        "purpose": COMMAND_SIGNATURE_PURPOSE,
        "gateway_id": command.gateway_id,
        "request_id": str(command.request_id),
        "event_id": str(command.event_id),
        "name": command.name.value,
        "args": command.args,
        "requested_by": command.requested_by,
        "reason": command.reason,
        "ts": command.ts,
        "timeout_s": command.timeout_s,
    }
    if command.attachment is not None:
        document["attachment_sha256"] = hashlib.sha256(command.attachment).hexdigest()
    return document


def sign_command(private_key: Ed25519PrivateKey, command: Command) -> str:
    """The signature (base64url, no padding) of ``command``."""
    return sign_document(private_key, command_document(command))


def verify_command(public_key: Ed25519PublicKey, command: Command, signature: str) -> None:
    """Return if ``signature`` is ``public_key``'s over ``command``; raises
    :class:`~protocol.errors.ConfigSignatureError` otherwise (:class:`~protocol.errors.MalformedSignatureError`
    when it cannot be a signature at all)."""
    verify_document(public_key, command_document(command), signature)

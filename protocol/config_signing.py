"""Ed25519 signatures over the configs the fleet pushes, and the keys that make and check them.

What is signed is :func:`signed_bytes`: deterministic JSON (sorted keys, no whitespace, UTF-8) of

    {"purpose": "outpost/config-desired/v1", "village_id": ..., "gateway_id": ..., "version": ...,
     "config": <GatewayConfig.model_dump(mode="json")>}

so a signature binds one config to one gateway of one village under one version: replayed to another
gateway, or relabelled with another version, it no longer verifies. Both sides build these bytes from
the same :class:`~protocol.gateway_config.GatewayConfig` model (the gateway from the config it decoded),
never from the bytes on the wire, so re-encoding is harmless.

Formats:

- signature: the 64-byte Ed25519 signature, base64url without padding (86 characters);
- key id: the first 16 hex digits of the SHA-256 of the raw 32-byte public key, to tell keys apart in
  logs and errors (a key rotation is diagnosable from both sides);
- public key (what a gateway holds): a PEM ``PUBLIC KEY`` block (SubjectPublicKeyInfo, as
  ``openssl pkey -pubout`` prints it), or the raw 32 bytes in base64 (standard or url-safe alphabet,
  padding optional) where a single line is handier (environment variables, enrollment payloads);
- private key (the fleet's only): a PEM ``PRIVATE KEY`` block (PKCS#8, optionally encrypted), or the
  raw 32-byte seed in base64.
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.clock import iso_utc
from protocol.errors import ConfigSignatureError, MalformedSignatureError, SigningKeyError
from protocol.gateway_config import GatewayConfig
from protocol.messages import SIGNATURE_PATTERN

SIGNATURE_PURPOSE: Final = "outpost/config-desired/v1"
"""Domain separation: these bytes can never be mistaken for anything else the same key might sign."""

_SIGNATURE_BYTES: Final = 64
_KEY_BYTES: Final = 32
_KEY_FILE_ENTRY: Final = re.compile(
    r"[ \t]*(?:-----BEGIN (?P<label>[A-Z0-9 ]+)-----.*?-----END (?P=label)-----|(?P<line>[^\n]+))", re.DOTALL
)
"""A key file, entry by entry in order: a whole PEM block, or one line."""
_NOT_AFTER: Final = re.compile(r"#\s*not-after:\s*(\S+)", re.IGNORECASE)


# --- what is signed --------------------------------------------------------------------------------


def canonical_bytes(document: Mapping[str, object]) -> bytes:
    """Deterministic JSON of ``document`` (sorted keys, no whitespace, UTF-8): what every signature covers."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def sign_document(private_key: Ed25519PrivateKey, document: Mapping[str, object]) -> str:
    """The signature (base64url, no padding) of ``document``'s canonical bytes; ``document`` names its purpose."""
    return _b64url(private_key.sign(canonical_bytes(document)))


def verify_document(public_key: Ed25519PublicKey, document: Mapping[str, object], signature: str) -> None:
    """Return if ``signature`` is ``public_key``'s over ``document``'s canonical bytes.

    Raises :class:`ConfigSignatureError` when it does not verify (naming the key it was checked against),
    :class:`MalformedSignatureError` (a subclass) when it cannot be a signature at all."""
    raw = _signature_bytes(signature)
    try:
        public_key.verify(raw, canonical_bytes(document))
    except InvalidSignature:
        raise ConfigSignatureError(f"signature does not verify with key {key_id(public_key)}") from None


def signed_bytes(village_id: str, gateway_id: str, version: int, config: GatewayConfig) -> bytes:
    """The exact bytes a config signature covers (see the module docstring)."""
    return canonical_bytes(_config_document(village_id, gateway_id, version, config))


def _config_document(village_id: str, gateway_id: str, version: int, config: GatewayConfig) -> dict[str, object]:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"a config version is a non-negative integer, not {version!r}")
    return {
        "purpose": SIGNATURE_PURPOSE,
        "village_id": village_id,
        "gateway_id": gateway_id,
        "version": version,
        "config": config.model_dump(mode="json"),
    }


def sign_config(
    private_key: Ed25519PrivateKey, village_id: str, gateway_id: str, version: int, config: GatewayConfig
) -> str:
    """The signature (base64url, no padding) of ``config`` as ``version`` for ``gateway_id`` of ``village_id``."""
    return sign_document(private_key, _config_document(village_id, gateway_id, version, config))


def verify_config(
    public_key: Ed25519PublicKey,
    village_id: str,
    gateway_id: str,
    version: int,
    config: GatewayConfig,
    signature: str,
) -> None:
    """Return if ``signature`` is ``public_key``'s over this config, version, gateway and village.

    Raises :class:`ConfigSignatureError` when the signature does not verify (the message names the key it
    was checked against), :class:`MalformedSignatureError` (a subclass) when it cannot be a signature at all.
    """
    verify_document(public_key, _config_document(village_id, gateway_id, version, config), signature)


def _signature_bytes(signature: str) -> bytes:
    if not isinstance(signature, str) or re.fullmatch(SIGNATURE_PATTERN, signature) is None:
        raise MalformedSignatureError(f"malformed signature: not {_SIGNATURE_BYTES} bytes in base64url without padding")
    raw = base64.urlsafe_b64decode(signature + "==")
    if _b64url(raw) != signature:  # stray low bits in the last character: one signature, one spelling
        raise MalformedSignatureError("malformed signature: not in canonical base64url")
    return raw


# --- keys --------------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of ``public_key``: 16 hex digits of the SHA-256 of its raw 32 bytes."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def load_public_key(data: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM ``PUBLIC KEY`` block or from its raw 32 bytes in base64."""
    keys = load_public_keys(data)
    if len(keys) != 1:
        raise SigningKeyError(f"expected one Ed25519 public key, found {len(keys)}")
    return keys[0]


def load_public_keys(data: str | bytes) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in ``data`` (see :func:`load_trusted_keys`), without their expiry."""
    return [trusted.key for trusted in load_trusted_keys(data)]


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A key a gateway trusts, and until when (UTC epoch ms; None: until it is revoked)."""

    key: Ed25519PublicKey
    not_after_ms: int | None = None

    @property
    def key_id(self) -> str:
        return key_id(self.key)


def load_trusted_keys(data: str | bytes) -> list[TrustedKey]:
    """Every Ed25519 public key in ``data``, in order: PEM ``PUBLIC KEY`` blocks and/or lines of raw base64 keys.

    Blank lines and lines starting with ``#`` are comments, so a key file can say what each key is; a comment
    ``# not-after: 2027-06-30T00:00:00Z`` (ISO 8601 with a time zone) sets when the next key stops being trusted.
    A file with two keys is how a rotation overlaps: the new key is added before the fleet signs with it.
    Raises :class:`SigningKeyError` for anything else, a private key above all (it never belongs on a gateway).
    """
    text = _text(data)
    keys: list[TrustedKey] = []
    not_after_ms: int | None = None
    for entry in _KEY_FILE_ENTRY.finditer(text):
        if entry.group("label") is not None:
            keys.append(TrustedKey(_pem_public(entry.group("label"), entry.group(0).strip()), not_after_ms))
            not_after_ms = None
            continue
        line = entry.group("line").strip()
        if "-----BEGIN" in line or "-----END" in line:
            raise SigningKeyError("a PEM block is incomplete (BEGIN without a matching END)")
        directive = _NOT_AFTER.fullmatch(line)
        if directive is not None:
            not_after_ms = _epoch_ms(directive.group(1))
        elif line and not line.startswith("#"):
            keys.append(TrustedKey(_public_from_raw(_b64decode(line, what="public key")), not_after_ms))
            not_after_ms = None
    if not keys:
        raise SigningKeyError("no public key found (expected a PEM PUBLIC KEY block or a base64 Ed25519 key)")
    return keys


def not_after_line(not_after_ms: int) -> str:
    """The comment that makes the key after it expire at ``not_after_ms`` (UTC epoch ms)."""
    return f"# not-after: {iso_utc(not_after_ms)}"


def _pem_public(label: str, block: str) -> Ed25519PublicKey:
    if "PRIVATE" in label:
        raise SigningKeyError(f"found a {label} where a public key belongs; give the public key only")
    if label != "PUBLIC KEY":
        raise SigningKeyError(f"found a PEM {label} block; expected PUBLIC KEY (an Ed25519 SubjectPublicKeyInfo)")
    try:
        key = serialization.load_pem_public_key(block.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"unreadable PEM public key: {exc}") from None
    return _ed25519_public(key)


def _epoch_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SigningKeyError(f"not-after {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise SigningKeyError(f"not-after {text!r} has no time zone (add Z for UTC)")
    return round(moment.timestamp() * 1000)


def load_private_key(data: str | bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM ``PRIVATE KEY`` block (PKCS#8) or from its raw 32-byte seed in base64."""
    text = _text(data).strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningKeyError(f"unreadable PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"not an Ed25519 key but {type(key).__name__}")
        return key
    raw = _b64decode(text, what="private key")
    if len(raw) != _KEY_BYTES:
        raise SigningKeyError(f"an Ed25519 private key is {_KEY_BYTES} bytes, this one {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The PEM ``PUBLIC KEY`` block a gateway's key file holds."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def public_key_base64(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key in base64url without padding (one line)."""
    return _b64url(_raw_public(public_key))


def private_key_pem(private_key: Ed25519PrivateKey, password: bytes | None = None) -> str:
    """The PEM ``PRIVATE KEY`` block (PKCS#8; encrypted when ``password`` is given) of the fleet's key."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode(
        "ascii"
    )


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _ed25519_public(key: object) -> Ed25519PublicKey:
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"not an Ed25519 key but {type(key).__name__}")
    return key


def _public_from_raw(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != _KEY_BYTES:
        raise SigningKeyError(f"an Ed25519 public key is {_KEY_BYTES} bytes, this one {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise SigningKeyError("a key is ASCII text (PEM or base64); this is binary") from None


def _b64decode(text: str, *, what: str) -> bytes:
    standard = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error:
        raise SigningKeyError(f"{what} is neither a PEM block nor base64") from None


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

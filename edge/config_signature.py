"""The fleet's signature on every pushed config, checked with the public key written at enrollment.

``config_signing_key`` in the settings names a file with the fleet's Ed25519 public key (a PEM
``PUBLIC KEY`` block; during a key rotation, the old and the new one). When it is set, a config runs
only if its signature verifies with one of those keys for this gateway, its village and its version;
that holds for a config pushed now and for the one kept on disk from an earlier run. Without it
(development only: production settings require it) every config runs, and the agent says so at start.
"""

import logging
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.errors import EdgeConfigError
from edge.settings import EdgeSettings
from protocol.config_signing import key_id, load_public_keys, verify_config
from protocol.errors import ConfigSignatureError, MalformedSignatureError, SigningKeyError
from protocol.gateway_config import GatewayConfig

logger = logging.getLogger(__name__)

SETTING = "config_signing_key"


class ConfigSignatures:
    """Says why a config may not run (unsigned, or not signed by a trusted key), or that it may."""

    def __init__(self, village_id: str, gateway_id: str, keys: Sequence[Ed25519PublicKey]) -> None:
        """``keys`` are the trusted fleet keys; none means signatures are not checked at all."""
        self._village_id = village_id
        self._gateway_id = gateway_id
        self._keys = {key_id(key): key for key in keys}

    @classmethod
    def unchecked(cls, village_id: str, gateway_id: str) -> "ConfigSignatures":
        """Every config runs, signed or not (development without a key)."""
        return cls(village_id, gateway_id, [])

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> "ConfigSignatures":
        """The keys in ``settings.config_signing_key``; an unreadable file, or one without a usable
        Ed25519 public key, is an :class:`EdgeConfigError` naming the setting."""
        path = settings.config_signing_key
        if path is None:
            logger.warning(
                "%s is not set: config signatures are NOT checked, any config pushed to this gateway runs "
                "(development only)",
                SETTING,
            )
            return cls.unchecked(settings.village_id, settings.gateway_id)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise EdgeConfigError(f"{SETTING} {path}: cannot read the fleet's config-signing key: {exc}") from exc
        try:
            keys = load_public_keys(content)
        except SigningKeyError as exc:
            raise EdgeConfigError(f"{SETTING} {path}: {exc}") from exc
        signatures = cls(settings.village_id, settings.gateway_id, keys)
        logger.info("pushed configs must be signed by the fleet with key %s", ", ".join(signatures.key_ids))
        return signatures

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the trusted keys; empty when signatures are not checked."""
        return tuple(self._keys)

    def refusal(
        self, version: int, config: GatewayConfig, signature: str | None, signed_with: str | None
    ) -> str | None:
        """Why ``config`` as ``version`` may not run, or None when it may.

        ``signed_with`` is the key id the fleet says it signed with; it only helps to say what went wrong
        (a signature counts when it verifies with any trusted key, whatever it names).
        """
        if not self._keys:
            return None
        trusted = ", ".join(self._keys)
        if signature is None:
            return f"unsigned config refused (this gateway trusts key {trusted})"
        candidates = sorted(self._keys.items(), key=lambda item: item[0] != signed_with)  # the named key first
        for _, key in candidates:
            try:
                verify_config(key, self._village_id, self._gateway_id, version, config, signature)
            except MalformedSignatureError as exc:
                return str(exc)
            except ConfigSignatureError:
                continue
            return None
        named = f" (signed with key {signed_with})" if signed_with is not None and signed_with not in self._keys else ""
        return f"signature does not verify with key {trusted}{named}"

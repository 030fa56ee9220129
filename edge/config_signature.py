"""The fleet's signature on every pushed config and every command, checked with the public key written at enrollment.

``config_signing_key`` in the settings names a file with the fleet's Ed25519 public key (a PEM
``PUBLIC KEY`` block; during a key rotation, the old and the new one). When it is set, a config runs
only if its signature verifies with one of those keys for this gateway, its village and its version;
that holds for a config pushed now and for the one kept on disk from an earlier run. Without it
(development only: production settings require it) every config runs, and the agent says so at start.

A key stops being trusted when its ``# not-after:`` time in the key file has passed (by the gateway's clock),
or once a config signed by another trusted key revoked it (:mod:`edge.revoked_keys`); a config may not revoke
the key that signs it. A signature by such a key is refused with the reason.
"""

import logging
from collections.abc import Callable, Collection, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.errors import EdgeConfigError
from edge.revoked_keys import REVOKED_KEYS_NAME, RevokedKeys
from edge.settings import EdgeSettings
from protocol.clock import iso_utc, utc_now_ms
from protocol.command_signing import verify_command
from protocol.config_signing import TrustedKey, load_trusted_keys, verify_config
from protocol.errors import ConfigSignatureError, MalformedSignatureError, SigningKeyError
from protocol.gateway_config import GatewayConfig
from protocol.messages import Command

logger = logging.getLogger(__name__)

SETTING = "config_signing_key"


class ConfigSignatures:
    """Says why a config or command may not run (unsigned, or not signed by a trusted key), or that it may."""

    def __init__(
        self,
        village_id: str,
        gateway_id: str,
        keys: Sequence[Ed25519PublicKey | TrustedKey],
        *,
        revoked: RevokedKeys | None = None,
        clock: Callable[[], int] = utc_now_ms,
    ) -> None:
        """``keys`` are the trusted fleet keys; none means signatures are not checked at all."""
        self._village_id = village_id
        self._gateway_id = gateway_id
        trusted = [key if isinstance(key, TrustedKey) else TrustedKey(key) for key in keys]
        self._keys = {t.key_id: t for t in trusted}
        self.revoked = revoked if revoked is not None else RevokedKeys(None)
        self._clock = clock

    @classmethod
    def unchecked(cls, village_id: str, gateway_id: str) -> "ConfigSignatures":
        """Every config and command runs, signed or not (development without a key)."""
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
            keys = load_trusted_keys(content)
        except SigningKeyError as exc:
            raise EdgeConfigError(f"{SETTING} {path}: {exc}") from exc
        revoked = RevokedKeys(settings.state_dir / REVOKED_KEYS_NAME)  # EdgeConfigError if damaged
        signatures = cls(settings.village_id, settings.gateway_id, keys, revoked=revoked)
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
        (a signature counts when it verifies with any trusted key, whatever it names). A config that revokes
        the key it verifies with may not run either.
        """

        def verify(key: Ed25519PublicKey, signed: str) -> None:
            verify_config(key, self._village_id, self._gateway_id, version, config, signed)

        return self._refusal("config", signature, signed_with, verify, config.revoked_signing_keys)

    def command_refusal(self, command: Command) -> str | None:
        """Why ``command`` may not run as the fleet's (unsigned, or not signed by a trusted key), or None."""

        def verify(key: Ed25519PublicKey, signed: str) -> None:
            verify_command(key, command, signed)

        return self._refusal("command", command.signature, command.key_id, verify, ())

    def _refusal(
        self,
        what: str,
        signature: str | None,
        signed_with: str | None,
        verify: Callable[[Ed25519PublicKey, str], None],
        revoking: Collection[str],
    ) -> str | None:
        if not self._keys:
            return None
        trusted = ", ".join(self._keys)
        if signature is None:
            return f"unsigned {what} refused (this gateway trusts key {trusted})"
        candidates = sorted(self._keys.values(), key=lambda t: t.key_id != signed_with)  # the named key first
        for candidate in candidates:
            try:
                verify(candidate.key, signature)
            except MalformedSignatureError as exc:
                return str(exc)
            except ConfigSignatureError:
                continue
            return self._untrusted(candidate, revoking)
        named = f" (signed with key {signed_with})" if signed_with is not None and signed_with not in self._keys else ""
        return f"{what} signature does not verify with key {trusted}{named}"

    def _untrusted(self, key: TrustedKey, revoking: Collection[str]) -> str | None:
        """Why a signature by ``key`` does not count (revoked, expired, revoking itself), or None."""
        if key.key_id in self.revoked.ids:
            return f"signed with key {key.key_id}, which the fleet revoked"
        if key.not_after_ms is not None and self._clock() > key.not_after_ms:
            return f"signed with key {key.key_id}, which expired at {iso_utc(key.not_after_ms)}"
        if key.key_id in revoking:
            return f"signed with key {key.key_id}, which it revokes: a revocation must be signed by another key"
        return None

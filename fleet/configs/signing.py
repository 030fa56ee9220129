"""The fleet's config-signing key (Ed25519): loaded from the settings' file, or in development made once and kept.

Gateways hold the public half (written at enrollment) and run only configs that verify with it, so
the private key must outlive restarts: a new key would make every gateway refuse every config. That
is why development keeps the key it generates next to the database instead of making one per start,
and why production refuses to start without the file (``configs.signing_key_file``).
"""

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fleet.errors import FleetError
from fleet.settings import FleetSettings
from protocol.clock import iso_utc, utc_now_ms
from protocol.command_signing import sign_command
from protocol.config_signing import (
    key_id,
    load_private_key,
    not_after_line,
    private_key_pem,
    public_key_pem,
    sign_config,
)
from protocol.errors import SigningKeyError
from protocol.gateway_config import GatewayConfig
from protocol.messages import Command

logger = logging.getLogger(__name__)

DEVELOPMENT_KEY_NAME: Final = "outpost-fleet-config-signing.pem"
EXPIRY_WARNING_MS: Final = 30 * 86_400_000
"""/healthz says the signing key needs rotating this long before it expires."""


class ConfigSigningKeyError(FleetError):
    """The fleet's config-signing key is missing, unreadable or not an Ed25519 private key."""


class ConfigSigner:
    """The fleet's signing key, the keys it retired (named in every config, so gateways stop trusting them),
    and until when gateways trust it."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        revoked_key_ids: Sequence[str] = (),
        not_after_ms: int | None = None,
    ) -> None:
        self._private_key = private_key
        self.key_id = key_id(private_key.public_key())
        if self.key_id in revoked_key_ids:
            raise ConfigSigningKeyError(f"the config-signing key {self.key_id} is in configs.revoked_key_ids")
        self.revoked_key_ids = tuple(sorted(set(revoked_key_ids)))
        self.not_after_ms = not_after_ms
        pem = public_key_pem(private_key.public_key())
        self.public_key_pem = pem if not_after_ms is None else f"{not_after_line(not_after_ms)}\n{pem}"
        """What a gateway's key file holds: the public key, after its expiry if it has one."""

    @classmethod
    def from_settings(cls, settings: FleetSettings) -> "ConfigSigner":
        configured = settings.configs.signing_key_file
        password = settings.configs.signing_key_password
        secret = password.get_secret_value().encode("utf-8") if password is not None else None
        if configured is not None:
            key = _load(configured, secret)
        elif settings.environment != "development":  # the settings refuse this too; never sign with a stray key
            raise ConfigSigningKeyError("production needs configs.signing_key_file")
        else:
            path = development_key_path(settings.database_url)
            key = _load(path, secret) if path.exists() else _generate(path)
        not_after = settings.configs.signing_key_not_after
        not_after_ms = round(not_after.timestamp() * 1000) if not_after is not None else None
        if not_after_ms is not None and utc_now_ms() > not_after_ms:
            raise ConfigSigningKeyError(
                f"the config-signing key {key_id(key.public_key())} expired at {iso_utc(not_after_ms)} "
                "(configs.signing_key_not_after): gateways no longer trust it; rotate to a new key"
            )
        return cls(key, revoked_key_ids=settings.configs.revoked_key_ids, not_after_ms=not_after_ms)

    def expiry_warning(self, now_ms: int) -> str | None:
        """What to say while the key is within :data:`EXPIRY_WARNING_MS` of its not-after time, else None."""
        if self.not_after_ms is None or self.not_after_ms - now_ms > EXPIRY_WARNING_MS:
            return None
        return (
            f"the config-signing key {self.key_id} expires at {iso_utc(self.not_after_ms)}: rotate it before "
            "gateways stop trusting it (docs/SECURITY.md)"
        )

    def sign(self, village_id: str, gateway_id: str, version: int, config: GatewayConfig) -> str:
        return sign_config(self._private_key, village_id, gateway_id, version, config)

    def signed_command(self, command: Command) -> Command:
        """``command`` with the fleet's signature (the same key signs commands, for another purpose)."""
        unsigned = command.model_copy(update={"signature": None, "key_id": None})
        return unsigned.model_copy(
            update={"signature": sign_command(self._private_key, unsigned), "key_id": self.key_id}
        )


def development_key_path(database_url: str) -> Path:
    """Next to a SQLite database file; in the working directory for any other database."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return Path(DEVELOPMENT_KEY_NAME)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).parent / DEVELOPMENT_KEY_NAME
    return Path(DEVELOPMENT_KEY_NAME)


def _load(path: Path, password: bytes | None) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigSigningKeyError(f"cannot read the config-signing key {path}: {exc}") from exc
    try:
        key = load_private_key(data, password)
    except SigningKeyError as exc:
        raise ConfigSigningKeyError(f"config-signing key {path}: {exc}") from exc
    logger.info("signing configs with key %s from %s", key_id(key.public_key()), path)
    return key


def _generate(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(private_key_pem(key))
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except OSError as exc:
        raise ConfigSigningKeyError(f"cannot keep a new config-signing key in {path}: {exc}") from exc
    logger.warning(
        "development: generated config-signing key %s in %s; gateways must hold its public half",
        key_id(key.public_key()),
        path,
    )
    return key

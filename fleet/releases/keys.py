"""The release keys the fleet trusts: read once at start from ``releases.trusted_keys_file``."""

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet.errors import FleetError
from protocol.config_signing import load_public_keys, public_key_pem
from protocol.errors import SigningKeyError


class ReleaseSettingsError(FleetError):
    """The release keys the fleet is told to trust cannot be read."""


def trusted_release_keys(path: Path | None) -> list[Ed25519PublicKey]:
    """The keys in ``path`` (none when unset); :class:`ReleaseSettingsError` naming the setting if unreadable."""
    if path is None:
        return []
    try:
        return load_public_keys(path.read_bytes())
    except OSError as exc:
        raise ReleaseSettingsError(f"cannot read releases.trusted_keys_file {path}: {exc.strerror}") from exc
    except SigningKeyError as exc:
        raise ReleaseSettingsError(f"releases.trusted_keys_file {path}: {exc}") from exc


def release_keys_pem(keys: list[Ed25519PublicKey]) -> str | None:
    """The keys as the PEM blocks gateways are given at enrollment; None when there are none."""
    return "".join(public_key_pem(key) for key in keys) or None

"""A throwaway fleet config-signing key pair for tests: signs desired configs, writes the gateway's key file."""

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.config_signing import key_id, public_key_pem, sign_config
from protocol.messages import ConfigDesired


@dataclass(frozen=True)
class SigningKeys:
    """A fresh Ed25519 key pair standing in for the fleet's config-signing key."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> "SigningKeys":
        return cls(Ed25519PrivateKey.generate())

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def write_public_key(self, path: Path) -> Path:
        """The gateway's ``config_signing_key`` file, as enrollment writes it (PEM)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(public_key_pem(self.public), encoding="utf-8")
        return path

    def sign(self, village_id: str, desired: ConfigDesired) -> ConfigDesired:
        """``desired`` with this key's signature for its gateway in ``village_id``, as the fleet publishes it."""
        signature = sign_config(self.private, village_id, desired.gateway_id, desired.version, desired.config)
        return desired.model_copy(update={"signature": signature, "key_id": self.key_id})

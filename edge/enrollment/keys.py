"""The gateway's own Ed25519 key pair, made on the gateway at enrollment: the private half never leaves it."""

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.config_signing import key_id, private_key_pem, public_key_pem


@dataclass(frozen=True, slots=True)
class GatewayKeyPair:
    private_pem: str = field(repr=False)
    public_pem: str
    key_id: str
    """16 hex digits of the SHA-256 of the raw public key, to recognise it in the fleet's records."""


def generate_key_pair() -> GatewayKeyPair:
    private_key = Ed25519PrivateKey.generate()
    public_key = private_key.public_key()
    return GatewayKeyPair(private_key_pem(private_key), public_key_pem(public_key), key_id(public_key))

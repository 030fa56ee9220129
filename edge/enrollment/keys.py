"""The gateway's own keys, made on the gateway at enrollment; their private halves never leave it: its Ed25519 key
pair (its identity in the fleet's records), and the EC P-256 key of its TLS client certificate, with the
certificate request the fleet's gateway CA answers."""

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

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


@dataclass(frozen=True, slots=True)
class TlsRequest:
    private_pem: str = field(repr=False)
    csr_pem: str


def generate_tls_request(hostname: str) -> TlsRequest:
    """A new EC P-256 key and its certificate request (the fleet names the certificate after the gateway id)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "outpost-gateway")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return TlsRequest(private_pem, request.public_bytes(serialization.Encoding.PEM).decode("ascii"))

"""The enrollment contract between ``outpost gateway enroll`` on a gateway and the fleet's ``POST /enroll``.

A technician is given an *enrollment code* (printed, or shown as a QR code): the fleet's URL and a
short-lived, single-use enrollment token, as ``outpost-enroll:1?fleet=<url>&token=<token>``
(:func:`enrollment_code`, :func:`parse_enrollment_code`). On the gateway, ``outpost gateway enroll``
makes the gateway's Ed25519 key pair and POSTs an :class:`EnrollmentRequest` (the token authenticates
it; no API token is needed); the fleet answers with an :class:`EnrollmentGrant`: the gateway's id and
village, how to reach the broker and with which credentials, the fleet's config-signing public key and
the gateway's initial config. A refused token is a ``401`` with the reason in ``detail``.

Both models carry ``schema_version``, like every payload of the contract; a change of shape bumps it.
"""

from dataclasses import dataclass
from typing import Annotated, Final, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from pydantic import Field, StringConstraints

from protocol.errors import EnrollmentCodeError
from protocol.gateway_config import GatewayConfig
from protocol.identifiers import GatewayId, ShortText, VillageId
from protocol.messages import WireModel

ENROLL_PATH: Final = "/enroll"
"""Where the fleet takes enrollment requests (no bearer token: the enrollment token is in the body)."""
ENROLLMENT_TOKEN_PREFIX: Final = "oet_"  # noqa: S105 - a prefix, not a secret
CODE_SCHEME: Final = "outpost-enroll"
CODE_VERSION: Final = 1

EnrollmentToken = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Pem = Annotated[str, StringConstraints(min_length=1, max_length=16_384, pattern=r"-----BEGIN [A-Z0-9 ]+-----")]
"""One or more PEM blocks (a public key, a CA bundle)."""
PublicKeyPem = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"-----BEGIN [A-Z0-9 ]+-----")]
"""One public key as a PEM block: an Ed25519 key is 113 characters; nothing longer is read."""
CsrPem = Annotated[
    str, StringConstraints(min_length=1, max_length=4096, pattern=r"-----BEGIN CERTIFICATE REQUEST-----")
]
"""One certificate request as a PEM block (an EC P-256 request is about 400 characters)."""


class EnrollmentRequest(WireModel):
    """What a gateway sends to enroll: the token it was given and the public half of the key it just made."""

    schema_version: Literal[1] = 1
    token: EnrollmentToken = Field(repr=False, description="The enrollment token, `oet_…` (single use).")
    public_key_pem: PublicKeyPem = Field(description="The gateway's Ed25519 public key, a PEM `PUBLIC KEY` block.")
    hostname: ShortText = Field(description="The gateway's host name, as the technician would recognise it.")
    agent_version: ShortText
    tls_csr_pem: CsrPem | None = Field(
        default=None,
        description="A certificate request (PEM) for the TLS key the gateway just made: a fleet with a gateway CA "
        "answers with the client certificate its broker asks for.",
    )


class BrokerGrant(WireModel):
    """How the gateway reaches the fleet's broker, and as whom.

    ``username``/``password`` are unset only when a development fleet provisions no broker credentials."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    tls: bool = Field(description="Whether to connect with TLS (verified against `ca_pem`, or the system's CAs).")
    ca_pem: Pem | None = Field(default=None, description="The CA that signed the broker's certificate.")
    username: str | None = Field(default=None, min_length=1, max_length=64)
    password: str | None = Field(default=None, min_length=1, max_length=256, repr=False)
    client_cert_pem: Pem | None = Field(
        default=None,
        description="The gateway's TLS client certificate, issued by the county's gateway CA from its request.",
    )
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        repr=False,
        description="The MQTT client id the gateway must connect with: the broker binds the login to it, and no "
        "other login can take over a session it cannot guess.",
    )


class EnrollmentGrant(WireModel):
    """The fleet's answer to an accepted :class:`EnrollmentRequest`."""

    schema_version: Literal[1] = 1
    gateway_id: GatewayId
    village_id: VillageId
    replaced: bool = Field(description="The gateway was enrolled before: its earlier key and credentials are void.")
    broker: BrokerGrant
    config_signing_key_pem: Pem | None = Field(
        default=None, description="The fleet's config-signing public key (Ed25519); unset: the fleet signs nothing."
    )
    release_keys_pem: Pem | None = Field(
        default=None,
        description="The release keys' public halves (PEM): agent updates must be signed by one; unset: the fleet "
        "serves no releases.",
    )
    config: GatewayConfig | None = Field(default=None, description="The config to run until the fleet pushes one.")
    notices: list[ShortText] = Field(
        default_factory=list, max_length=8, description="What the technician should know (e.g. a development fleet)."
    )


@dataclass(frozen=True, slots=True)
class EnrollmentCode:
    """What an enrollment code holds: the fleet's base URL and the enrollment token."""

    fleet_url: str
    token: str


def enrollment_code(fleet_url: str, token: str) -> str:
    """``outpost-enroll:1?fleet=<url>&token=<token>``: one string for a QR code or a copy and paste."""
    _check_parts(fleet_url, token)
    return f"{CODE_SCHEME}:{CODE_VERSION}?{urlencode({'fleet': fleet_url, 'token': token})}"


def parse_enrollment_code(code: str) -> EnrollmentCode:
    """The fleet URL and token of an enrollment code; :class:`EnrollmentCodeError` says what is wrong with it."""
    head, separator, query = code.strip().partition("?")
    if head != f"{CODE_SCHEME}:{CODE_VERSION}" or not separator:
        if head.startswith(f"{CODE_SCHEME}:"):
            raise EnrollmentCodeError(f"enrollment code version {head.partition(':')[2]!r} is not supported")
        raise EnrollmentCodeError(f"not an enrollment code (expected {CODE_SCHEME}:{CODE_VERSION}?fleet=…&token=…)")
    fields = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    values = {}
    for name in ("fleet", "token"):
        found = fields.get(name, [])
        if len(found) != 1 or not found[0]:
            raise EnrollmentCodeError(f"the enrollment code needs exactly one {name}=")
        values[name] = found[0]
    _check_parts(values["fleet"], values["token"])
    return EnrollmentCode(fleet_url=values["fleet"], token=values["token"])


def _check_parts(fleet_url: str, token: str) -> None:
    parts = urlsplit(fleet_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise EnrollmentCodeError(f"the fleet URL must be http(s)://host[:port][/path], not {fleet_url!r}")
    if not token.startswith(ENROLLMENT_TOKEN_PREFIX):
        raise EnrollmentCodeError(f"an enrollment token starts with {ENROLLMENT_TOKEN_PREFIX}")

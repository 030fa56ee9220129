"""The protocol package's exception tree: everything it raises derives from ProtocolError."""


class ProtocolError(Exception):
    """Base class of every error raised by the wire contract."""


class TopicError(ProtocolError, ValueError):
    """A topic string or topic part does not fit the Outpost topic scheme."""


class SigningKeyError(ProtocolError, ValueError):
    """A config-signing key cannot be loaded: not PEM or base64, not Ed25519, or the wrong kind of key."""


class ConfigSignatureError(ProtocolError):
    """A desired config's signature is malformed or does not verify with the key it was checked against."""


class MalformedSignatureError(ConfigSignatureError):
    """A config signature is not an Ed25519 signature in canonical base64url: no key can verify it."""


class EnrollmentCodeError(ProtocolError, ValueError):
    """An enrollment code (``outpost-enroll:1?fleet=…&token=…``) is malformed or of an unknown version."""


# --- request signing and the governance callbacks (protocol.request_signing, protocol.governance) ---


class SigningSecretError(ProtocolError, ValueError):
    """A request-signing secret is unusable (empty), or no secret was given to sign or verify with."""


class RequestSignatureError(ProtocolError):
    """A signed HTTP request cannot be trusted; ``reason`` is a stable slug a server can answer with."""

    reason = "invalid_signature"


class UnsignedRequestError(RequestSignatureError):
    """The request lacks the timestamp or the signature header."""

    reason = "unsigned_request"


class BadRequestSignatureError(RequestSignatureError):
    """The signature header is malformed, or no accepted secret produces it for this request."""

    reason = "bad_signature"


class RequestTimestampError(RequestSignatureError):
    """The signed timestamp is malformed or outside the replay window (a stale or replayed request, or a bad clock)."""

    reason = "timestamp_outside_window"


class ReplayedRequestError(RequestSignatureError):
    """The same signed request was already accepted inside the replay window."""

    reason = "replayed_request"


class GovernancePayloadError(ProtocolError, ValueError):
    """A governance payload (case callback, case update) or a case id does not fit the contract."""


class TlsSettingsError(ProtocolError, ValueError):
    """A TLS setting cannot be used: a CA, certificate or key file missing or unreadable, a key without its
    certificate. The message names the setting (e.g. ``broker.tls.ca_file``) and the file."""


# --- releases (protocol.releases) ---


class ReleaseError(ProtocolError):
    """A release cannot be trusted or used."""


class ReleaseSignatureError(ReleaseError):
    """A release's signature is by no trusted release key, or its manifest was altered after signing."""


class ReleaseFileError(ReleaseError):
    """A release's manifest or one of its files is missing, unreadable, or not as the manifest says."""


class GatewayRequestError(ProtocolError):
    """A request that says it comes from a gateway carries no usable signature by that gateway's key."""

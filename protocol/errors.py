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

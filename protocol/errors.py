"""The protocol package's exception tree: everything it raises derives from ProtocolError."""


class ProtocolError(Exception):
    """Base class of every error raised by the wire contract."""


class TopicError(ProtocolError, ValueError):
    """A topic string or topic part does not fit the Outpost topic scheme."""

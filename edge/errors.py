"""The edge package's exception tree: everything it raises derives from EdgeError."""


class EdgeError(Exception):
    """Base class of every error raised by the gateway agent."""


class EdgeConfigError(EdgeError):
    """The agent's settings or configuration are invalid."""


class UplinkRefusedError(EdgeError):
    """The broker refused the gateway permanently (bad credentials, not authorised): retrying is useless."""

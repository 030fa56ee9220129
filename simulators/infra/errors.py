"""The infra package's exception tree: everything it raises derives from InfraError."""


class InfraError(Exception):
    """Base class of every error raised while running a test or demo server."""


class BinaryNotFoundError(InfraError):
    """A server's executable is not installed (``scripts/test`` installs them)."""


class ServerStartError(InfraError):
    """A server exited, or did not become ready in time, while starting."""


class ServerStateError(InfraError):
    """An operation does not fit the server's state (starting twice, querying a stopped server)."""


class ServerRequestError(InfraError):
    """A running server answered a read-back request with an error."""


class MicroPythonError(InfraError):
    """A script failed under the MicroPython interpreter (its traceback is the message)."""

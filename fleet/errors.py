"""The fleet package's exception tree: everything it raises derives from FleetError.

Third-party exceptions (SQLAlchemy, httpx, influxdb-client, aiomqtt, sockets) are translated into
these where that library is called. ``TransientError``s are worth retrying; the others are not.

    FleetError
    ├── TransientError
    │   ├── DatabaseUnavailableError
    │   ├── TimeSeriesUnavailableError
    │   ├── ChannelUnavailableError (an alert channel: platform, webhook, broker)
    │   │   └── GovernanceUnavailableError
    │   └── BrokerControlUnavailableError
    ├── DatabaseRefusedError
    │   └── DataIntegrityError
    ├── MigrationError
    ├── TimeSeriesRejectedError
    ├── ChannelRejectedError
    │   └── GovernanceRejectedError
    ├── ChannelSettingsError
    │   └── GovernanceSettingsError
    ├── NothingToSendError (an outbox message with nothing left to do)
    ├── BrokerRefusedError
    ├── BrokerAccessRefusedError (the broker's dynamic security plugin refused a command)
    │   ├── BrokerAccessNotFoundError
    │   └── BrokerAccessConflictError
    ├── HttpBindError
    └── RegistryError (refused requests: the API answers them with a 4xx)
        ├── NotFoundError
        ├── ConflictError
        │   └── IllegalTransitionError (an alert cannot take that step from its state)
        ├── InvalidRequestError
        └── AccessError
            ├── NotAuthenticatedError
            └── PermissionDeniedError
"""


class FleetError(Exception):
    """Base class of every error raised by the fleet manager."""


class TransientError(FleetError):
    """A dependency is temporarily unavailable; the operation may succeed if retried."""


class DatabaseUnavailableError(TransientError):
    """The fleet database did not answer (locked, disconnected, timed out)."""


class DatabaseRefusedError(FleetError):
    """The database refused a statement for good (bad data, schema mismatch): retrying cannot help."""


class DataIntegrityError(DatabaseRefusedError):
    """The database refused a write as inconsistent (duplicate key, missing parent row)."""


class MigrationError(FleetError):
    """The fleet database could not be brought to the newest schema."""


class TimeSeriesUnavailableError(TransientError):
    """The time-series server did not take a write (down, slow, misconfigured, or answered 5xx)."""


class TimeSeriesRejectedError(FleetError):
    """The time-series server refused the points themselves (HTTP 400/413/422): retrying cannot help."""


class ChannelUnavailableError(TransientError):
    """An alert channel (the governance platform, a webhook, the broker) could not take a message now."""


class ChannelRejectedError(FleetError):
    """An alert channel refused this message's content: sending it again cannot help."""


class ChannelSettingsError(FleetError):
    """An alert channel refused the fleet itself (its URL, token or secret is wrong): no message can pass."""


class NothingToSendError(FleetError):
    """An outbox message has nothing left to do (withdrawing a case that was never opened)."""


class GovernanceUnavailableError(ChannelUnavailableError):
    """The governance platform could not be reached or answered 5xx/429."""


class GovernanceRejectedError(ChannelRejectedError):
    """The governance platform refused this case's content (4xx other than auth, not-found and 429)."""


class GovernanceSettingsError(ChannelSettingsError):
    """The governance platform refused the fleet itself (401/403/404): the URL or token is wrong."""


class BrokerRefusedError(FleetError):
    """The MQTT broker refused the fleet's credentials: retrying cannot help."""


class DownlinkUnavailableError(TransientError):
    """A message to a gateway was not acknowledged by the broker in time (no connection, or it dropped)."""


class BrokerControlUnavailableError(TransientError):
    """The broker's dynamic security control API did not answer: unreachable, disconnected or timed out."""


class BrokerAccessRefusedError(FleetError):
    """The broker's dynamic security plugin refused a command (``command``) with its ``error`` message."""

    def __init__(self, message: str, *, command: str, error: str) -> None:
        super().__init__(message)
        self.command = command
        self.error = error


class BrokerAccessNotFoundError(BrokerAccessRefusedError):
    """The broker holds no such client or role."""


class BrokerAccessConflictError(BrokerAccessRefusedError):
    """A broker client or role exists already and is not the one asked for (e.g. a gateway's username
    held by a client that is not that gateway's)."""


class HttpBindError(FleetError):
    """An HTTP server could not listen on its address (port taken, not permitted)."""


class RegistryError(FleetError):
    """A request the registry refuses as asked; nothing was changed."""


class NotFoundError(RegistryError):
    """The county, town, village, grid, gateway, device or token named does not exist."""


class ConflictError(RegistryError):
    """The change contradicts what exists: a duplicate id, or removing something still in use."""


class IllegalTransitionError(ConflictError):
    """An alert cannot take that step from the state it is in (acknowledging a closed alert, say)."""


class InvalidRequestError(RegistryError):
    """The request is well-formed but not valid here (e.g. a grid of another village, a bad CSV row)."""


class AccessError(RegistryError):
    """The caller may not do this."""


class NotAuthenticatedError(AccessError):
    """No token, or a token that is unknown, revoked or expired."""


class PermissionDeniedError(AccessError):
    """The caller's role does not allow this action."""


class EnrollmentTokenError(NotAuthenticatedError):
    """An enrollment token is unknown, used already, expired or revoked (the API answers 401 with which)."""


class EnrollmentBrokerError(TransientError):
    """The fleet could not change a gateway's broker login (the broker's dynamic security administrator was
    refused, or the fleet has none configured) while enrolling, revoking, moving or removing it: nothing was
    changed (an enrollment token stays unused)."""


class EnrollmentSettingsError(FleetError):
    """The enrollment settings cannot be used (e.g. the broker CA file handed to gateways is unreadable)."""


class AlertRulesSettingsError(FleetError):
    """``alerts.rules``, the base layer of alert rules, is not valid (an unknown key, a bad value)."""


class BrokerTlsSettingsError(FleetError):
    """``broker.tls`` cannot be used: a CA, certificate or key file it names is missing or unreadable."""

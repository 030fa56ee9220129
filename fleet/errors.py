"""The fleet package's exception tree: everything it raises derives from FleetError.

Third-party exceptions (SQLAlchemy, httpx, influxdb-client, aiomqtt, sockets) are translated into
these where that library is called. ``TransientError``s are worth retrying; the others are not.

    FleetError
    ├── TransientError
    │   ├── DatabaseUnavailableError
    │   ├── TimeSeriesUnavailableError
    │   └── GovernanceUnavailableError
    ├── DatabaseRefusedError
    │   └── DataIntegrityError
    ├── MigrationError
    ├── TimeSeriesRejectedError
    ├── GovernanceRejectedError
    ├── GovernanceSettingsError
    ├── BrokerRefusedError
    └── HttpBindError
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


class GovernanceUnavailableError(TransientError):
    """The governance platform could not be reached or answered 5xx/429."""


class GovernanceRejectedError(FleetError):
    """The governance platform refused this case's content (4xx other than auth, not-found and 429)."""


class GovernanceSettingsError(FleetError):
    """The governance platform refused the fleet itself (401/403/404): the URL or token is wrong."""


class BrokerRefusedError(FleetError):
    """The MQTT broker refused the fleet's credentials: retrying cannot help."""


class HttpBindError(FleetError):
    """An HTTP server could not listen on its address (port taken, not permitted)."""

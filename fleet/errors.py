"""The fleet package's exception tree: everything it raises derives from FleetError.

Third-party exceptions (SQLAlchemy, httpx, influxdb-client, aiomqtt) are translated into these at
the module that talks to that library; ``Transient`` errors are worth retrying, the others are not.
"""


class FleetError(Exception):
    """Base class of every error raised by the fleet manager."""


class FleetConfigError(FleetError):
    """The fleet's settings are invalid or incomplete."""


class TransientError(FleetError):
    """A dependency is temporarily unavailable; the operation may succeed if retried."""


class DatabaseUnavailableError(TransientError):
    """The fleet database did not answer (locked, disconnected, out of space)."""


class DataIntegrityError(FleetError):
    """The database refused a write as inconsistent (duplicate key, missing parent row)."""


class TimeSeriesUnavailableError(TransientError):
    """The time-series server did not take a write (down, slow, or answered 5xx)."""


class TimeSeriesRejectedError(FleetError):
    """The time-series server refused a write permanently (bad token, unknown bucket, bad data)."""


class GovernanceUnavailableError(TransientError):
    """The governance platform could not be reached or answered 5xx/429."""


class GovernanceRejectedError(FleetError):
    """The governance platform refused a case permanently (4xx other than 429)."""


class BrokerRefusedError(FleetError):
    """The MQTT broker refused the fleet's credentials: retrying cannot help."""

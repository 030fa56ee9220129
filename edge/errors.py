"""The edge package's exception tree: everything it raises derives from EdgeError."""


class EdgeError(Exception):
    """Base class of every error raised by the gateway agent."""


class EdgeConfigError(EdgeError):
    """The agent's settings or configuration are invalid."""


class UplinkRefusedError(EdgeError):
    """The broker refused the gateway permanently (bad credentials, not authorised): retrying is useless."""


class BrokerCertificateError(UplinkRefusedError):
    """The broker's TLS certificate does not verify against the configured CA, or does not name the
    broker's host: a configuration problem that retrying cannot fix (stops the agent like a refusal)."""


class LocalBrokerRefusedError(EdgeError):
    """The village's local broker refused the gateway permanently (bad credentials), or its TLS
    certificate cannot be trusted: retrying is useless."""


class SnapshotError(EdgeError):
    """A camera snapshot could not be kept or read."""


class SnapshotNotFoundError(SnapshotError):
    """No snapshot has that id: malformed, unknown, expired, or its file is damaged."""


class ConfigApplyError(EdgeError):
    """A pushed configuration could not be applied; the previous one was restored."""


class RestartRequestedError(EdgeError):
    """The fleet asked the agent to restart; it stopped cleanly so its supervisor (systemd) starts it again."""


class EnrollmentError(EdgeError):
    """``outpost gateway enroll`` could not enroll the gateway or write what it received."""


class EnrollmentRefusedError(EnrollmentError):
    """The fleet refused the enrollment (token unknown, used, expired or revoked; a conflict): ask for a new token."""


class FleetUnreachableError(EnrollmentError):
    """The fleet could not be reached, answered with a server error, or its certificate is not trusted."""


class UpdateError(EdgeError):
    """An update (a release from the fleet) cannot be fetched, trusted or installed."""


class UpdateRefusedError(UpdateError):
    """The fleet refused the download for good (no such release, this gateway unknown or revoked), or the release
    is not signed by a trusted release key or not as its manifest says: retrying cannot help."""


class UpdateUnavailableError(UpdateError):
    """The fleet could not be reached, or kept failing, until the download gave up; worth trying again later."""

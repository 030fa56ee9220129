"""Where each gateway stands with its desired config, from the desired version and what the gateway reported."""

from enum import StrEnum

from fleet.db.schema import GatewayConfigRow
from protocol.messages import ConfigReported, ConfigStatus


class SyncStatus(StrEnum):
    IN_SYNC = "in_sync"  # the gateway reported the desired version applied
    PENDING = "pending"  # published (retained); the gateway has not reported that version yet
    REJECTED = "rejected"  # the gateway refused the desired version; ``error`` says why
    NOT_PUBLISHED = "not_published"  # the broker has not taken the desired version yet (retried)
    INVALID = "invalid"  # the layers no longer make a valid config for it: its last good version stays desired
    NOT_CONFIGURED = "not_configured"  # no layer reaches it: the fleet pushes nothing, it runs its own settings


def status_of(row: GatewayConfigRow | None) -> SyncStatus:
    if row is None or row.config is None:
        return SyncStatus.NOT_CONFIGURED
    if row.invalid is not None:
        return SyncStatus.INVALID
    if row.reported_version == row.version:
        return SyncStatus.IN_SYNC if row.reported_status == ConfigStatus.APPLIED else SyncStatus.REJECTED
    if row.published_ms is None:
        return SyncStatus.NOT_PUBLISHED
    return SyncStatus.PENDING


def error_of(row: GatewayConfigRow | None) -> str | None:
    """What a person should read: why the layers do not resolve, or why the gateway refused the desired version."""
    if row is None:
        return None
    if row.invalid is not None:
        return row.invalid
    if row.reported_version == row.version and row.reported_status == ConfigStatus.REJECTED:
        return row.reported_error
    return None


def note_report(row: GatewayConfigRow, report: ConfigReported, now_ms: int) -> bool:
    """Record ``report`` on ``row`` unless an earlier one overtook it; True if the desired version must be
    raised above it (the gateway runs a higher version than the fleet's, e.g. after a database restore, and
    would ignore anything lower as stale)."""
    if row.reported_version is not None and report.version < row.reported_version:
        return False
    row.reported_version = report.version
    row.reported_status = report.status.value
    row.reported_error = report.error
    row.reported_ms = now_ms
    return row.config is not None and report.status is ConfigStatus.APPLIED and report.version > row.version


def raise_above(row: GatewayConfigRow, version: int) -> None:
    """Desire the same config again as a version above ``version``, to be signed and published."""
    row.version = version + 1
    row.published_ms = None
    row.signature = None
    row.key_id = None

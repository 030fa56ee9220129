"""Alert kinds as the fleet stores them: raised by a gateway (`AlertKind`) or by the fleet (`FleetAlertKind`)."""

from protocol.messages import AlertKind, FleetAlertKind

AnyAlertKind = AlertKind | FleetAlertKind


def kind_of(value: str) -> AnyAlertKind:
    """The kind a stored alert names; :class:`ValueError` for one neither side raises."""
    try:
        return AlertKind(value)
    except ValueError:
        return FleetAlertKind(value)

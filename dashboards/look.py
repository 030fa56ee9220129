"""How the dashboards look from across a room: few colours, each with one meaning, and big numbers.

Green: all well. Orange: needs attention. Red: act now. Blue: information, never an alarm. Nothing
else is coloured by state; curves use Grafana's classic palette. A count of problems is green at 0
and red from 1: on a wall screen "any" is the threshold.
"""

from typing import Final

from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.models.dashboard import (
    RangeMap,
    RegexMap,
    SpecialValueMap,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)

ValueMapping = ValueMap | RangeMap | RegexMap | SpecialValueMap

OK: Final = "green"
ATTENTION: Final = "orange"
ACT_NOW: Final = "red"
INFO: Final = "blue"

SEVERITY_COLOURS: Final = {
    "critical": ACT_NOW,
    "major": ATTENTION,
    "minor": "yellow",
    "warning": INFO,
    "info": "text",
}
"""The alert severities' colours wherever they are a series of their own."""

JOB_STATE_COLOURS: Final = {
    "succeeded": OK,
    "failed": ACT_NOW,
    "rolled_back": ACT_NOW,
    "revert_failed": ACT_NOW,
    "reverting": ATTENTION,
    "reverted": ATTENTION,
}
"""A job's gateway states (fleet.jobs.states.TargetState) wherever they are a series of their own: done well green,
failed red, put back after an abort orange; the states on the way (queued, sent, downloading, ...) and skipped keep
the palette."""


def thresholds(*steps: tuple[float, str], base: str = OK) -> ThresholdsConfig:
    """``base`` below the first step; each ``(value, colour)`` from its value up."""
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(None, base), *(Threshold(value, colour) for value, colour in steps)])
    )


ANY_IS_BAD: Final = ((1.0, ACT_NOW),)
"""0 is green, 1 or more red (offline gateways, overdue cases, dead deliveries)."""
NEUTRAL: Final = ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(None, INFO)])
"""Counts that are information, not a problem (alerts raised, messages ingested)."""


def village_status_text() -> list[ValueMapping]:
    """A village's ``status`` (0, 1, 2) as words people read from afar, in their colours."""
    return [
        ValueMap(
            {
                "0": ValueMappingResult(text="OK", color=OK, index=0),
                "1": ValueMappingResult(text="Attention", color=ATTENTION, index=1),
                "2": ValueMappingResult(text="Act now", color=ACT_NOW, index=2),
            }
        )
    ]


STATUS_THRESHOLDS: Final = ((1.0, ATTENTION), (2.0, ACT_NOW))

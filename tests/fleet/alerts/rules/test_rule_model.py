"""The alert rules model as a layer's author meets it: strict validation with one-line reasons naming where,
and quiet hours that end at the local clock time, across midnight, with and without daylight saving time."""

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fleet.alerts.rules.layers import ALERT_RULES
from fleet.alerts.rules.model import QuietHours
from fleet.errors import InvalidRequestError
from fleet.layers.scope import Scope
from protocol.messages import Severity

VILLAGE = (Scope.VILLAGE, "shiqiao")


def refusal(overrides: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequestError) as refused:
        ALERT_RULES.check(overrides, VILLAGE)
    reason = str(refused.value)
    assert "\n" not in reason, "one line, as the API and the CLI show it"
    return reason


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"kinds": {"panic": {"hold_of_s": 5}}}, "kinds.panic.hold_of_s: Extra inputs are not permitted"),
        ({"quiet": {}}, "quiet: Extra inputs are not permitted"),
        ({"kinds": {"panic": {"severity": "urgent"}}}, "kinds.panic.severity: Input should be 'critical'"),
        ({"ack_deadline_s": {"severe": 60}}, "ack_deadline_s.severe"),
        ({"kinds": {"smoke": {}}}, "kinds.smoke.[key]"),
        (
            {"quiet_hours": {"start": "22:00", "end": "06:00", "timezone": "Mars/Olympus_Mons"}},
            "quiet_hours.timezone: Value error, unknown time zone 'Mars/Olympus_Mons'",
        ),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet hours start and end at the same time"),
        ({"quiet_hours": {"start": "24:00", "end": "06:00"}}, "quiet_hours.start: String should match pattern"),
        ({"quiet_hours": {"end": "07:00"}}, "quiet_hours.start: Field required"),
        ({"kinds": {"gateway_offline": {"rate_limit": {"max_alerts": 0, "per_s": 60}}}}, "rate_limit.max_alerts"),
        ({"watch": {"offline_after_missed_heartbeats": "2"}}, "watch.offline_after_missed_heartbeats: Input should be"),
        ({"watch": {"disk_percent": 101}}, "watch.disk_percent: Input should be less than or equal to 100"),
        ({"clear_hold_s": None}, "clear_hold_s: Input should be a valid number"),
    ],
)
def test_a_layer_that_is_not_valid_rules_is_refused_naming_where(overrides: dict[str, Any], where: str) -> None:
    reason = refusal(overrides)

    assert reason.startswith("village alert rules 'shiqiao' is not valid: ")
    assert where in reason


def test_a_layer_that_is_not_plain_json_or_too_large_is_refused() -> None:
    assert "not plain JSON" in refusal({"clear_hold_s": float("nan")})
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"x": deep}
    assert "nests deeper than any valid one" in refusal(deep)
    huge = {"kinds": {"panic": {"note": "x" * 40_000}}}
    assert "over the 32768-byte limit" in refusal(huge)


def test_a_valid_layer_is_kept_as_given() -> None:
    layer = {
        "kinds": {"camera_offline": {"severity": "minor", "hold_off_s": 300}, "panic": {"clear_hold_s": 0}},
        "ack_deadline_s": {"critical": 60},
        "quiet_hours": {"start": "22:00", "end": "06:30", "timezone": "Asia/Shanghai", "hold": ["minor"]},
        "watch": {"offline_after_missed_heartbeats": 3},
    }

    assert ALERT_RULES.check(layer, VILLAGE) == layer


def at_ms(zone: str, year: int, month: int, day: int, hour: int, minute: int) -> int:
    return round(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


NIGHT_SHANGHAI = QuietHours(start="22:00", end="06:30", timezone="Asia/Shanghai")
"""Across midnight, in a zone without daylight saving time (UTC+8 all year)."""


@pytest.mark.parametrize(
    ("local", "held_until"),
    [
        ((2024, 5, 1, 22, 0), (2024, 5, 2, 6, 30)),
        ((2024, 5, 1, 23, 59), (2024, 5, 2, 6, 30)),
        ((2024, 5, 2, 2, 0), (2024, 5, 2, 6, 30)),
        ((2024, 5, 2, 6, 29), (2024, 5, 2, 6, 30)),
        ((2024, 5, 2, 6, 30), None),
        ((2024, 5, 2, 12, 0), None),
        ((2024, 5, 1, 21, 59), None),
    ],
)
def test_quiet_hours_across_midnight_hold_until_the_local_end(
    local: tuple[int, int, int, int, int], held_until: tuple[int, int, int, int, int] | None
) -> None:
    held = NIGHT_SHANGHAI.held_until_ms(at_ms("Asia/Shanghai", *local), Severity.MINOR)

    assert held == (None if held_until is None else at_ms("Asia/Shanghai", *held_until))


def test_quiet_hours_end_in_the_zone_of_the_rules_not_in_utc() -> None:
    nine_pm_utc = round(datetime(2024, 5, 1, 21, 0, tzinfo=UTC).timestamp() * 1000)  # 05:00 in Shanghai

    held = NIGHT_SHANGHAI.held_until_ms(nine_pm_utc, Severity.WARNING)

    assert held == round(datetime(2024, 5, 1, 22, 30, tzinfo=UTC).timestamp() * 1000)


def test_quiet_hours_over_a_daylight_saving_change_end_at_the_local_clock_time() -> None:
    berlin = QuietHours(start="22:00", end="06:00", timezone="Europe/Berlin")
    # The night of 30-31 March 2024 the clocks go from 02:00 to 03:00: 23:00 to 06:00 is 6 hours, not 7.
    held = berlin.held_until_ms(at_ms("Europe/Berlin", 2024, 3, 30, 23, 0), Severity.MINOR)

    assert held == round(datetime(2024, 3, 31, 4, 0, tzinfo=UTC).timestamp() * 1000), "06:00 CEST"
    assert held is not None
    assert held - at_ms("Europe/Berlin", 2024, 3, 30, 23, 0) == 6 * 3600 * 1000


def test_quiet_hours_within_one_day_and_severities_not_held() -> None:
    lunch = QuietHours(start="12:00", end="13:30", hold=frozenset({Severity.INFO}))

    assert lunch.held_until_ms(at_ms("UTC", 2024, 5, 1, 12, 15), Severity.INFO) == at_ms("UTC", 2024, 5, 1, 13, 30)
    assert lunch.held_until_ms(at_ms("UTC", 2024, 5, 1, 13, 30), Severity.INFO) is None
    assert lunch.held_until_ms(at_ms("UTC", 2024, 5, 1, 11, 59), Severity.INFO) is None
    assert lunch.held_until_ms(at_ms("UTC", 2024, 5, 1, 12, 15), Severity.MINOR) is None, "not listed: goes now"
    assert NIGHT_SHANGHAI.held_until_ms(at_ms("Asia/Shanghai", 2024, 5, 1, 23, 0), Severity.CRITICAL) is None

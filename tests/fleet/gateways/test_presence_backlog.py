"""Presence after a fleet restart: traffic sent longer ago than the heartbeat timeout (the broker's
backlog for the fleet) brings no gateway online; its Last Will still counts; fresh traffic does."""

import pytest

from fleet.gateways.presence import OfflineReason, PresenceTracker, Transition

V = "lakeside"
GW = "gw-01"
T0 = 1_000_000
TIMEOUT_MS = 30_000  # 3 missed heartbeats x the default 10 s


@pytest.fixture
def tracker() -> PresenceTracker:
    return PresenceTracker(missed_heartbeats=3, default_interval_s=10)


def test_a_heartbeat_older_than_the_timeout_brings_no_gateway_online(tracker: PresenceTracker) -> None:
    assert tracker.seen(GW, V, T0, interval_s=10, sent_ms=T0 - TIMEOUT_MS) is None
    assert not tracker.is_online(GW)
    assert tracker.online_count == 0


def test_a_gateway_that_died_while_the_fleet_was_down_goes_from_unknown_to_lost(tracker: PresenceTracker) -> None:
    # The restarted fleet's session delivers the dead gateway's last heartbeats, then its Last Will.
    for age_ms in (60_000, 50_000, 40_000):
        assert tracker.seen(GW, V, T0, interval_s=10, sent_ms=T0 - age_ms) is None

    will = tracker.went_offline(GW, V, OfflineReason.LOST, seq=9, now_ms=T0 + 1)

    assert will == Transition(GW, V, False, OfflineReason.LOST, T0 + 1)
    assert not tracker.is_online(GW)


def test_traffic_sent_within_the_timeout_brings_a_gateway_online(tracker: PresenceTracker) -> None:
    assert tracker.seen(GW, V, T0, interval_s=10, sent_ms=T0 - TIMEOUT_MS + 1) == Transition(
        GW, V, True, "connected", T0
    )


def test_the_heartbeats_own_interval_sets_how_old_is_too_old(tracker: PresenceTracker) -> None:
    # Sent 60 s ago by a gateway beating every 60 s: well within its 180 s timeout.
    assert tracker.seen(GW, V, T0, interval_s=60, sent_ms=T0 - 60_000) is not None


def test_an_online_gateway_is_kept_online_by_traffic_whatever_its_clock_says(tracker: PresenceTracker) -> None:
    tracker.announced_online(GW, V, seq=1, now_ms=T0)
    # A gateway whose clock runs a minute behind: its heartbeats look old, but they arrive.
    for beat in range(1, 10):
        now = T0 + beat * 10_000
        tracker.seen(GW, V, now, interval_s=10, sent_ms=now - 60_000)
        assert tracker.expire(now) == []

    assert tracker.is_online(GW)


def test_a_timed_out_gateway_comes_back_on_fresh_traffic_only(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0, interval_s=1, sent_ms=T0)
    tracker.expire(T0 + 3_000)

    assert tracker.seen(GW, V, T0 + 4_000, sent_ms=T0 + 500) is None  # queued before it went silent
    assert tracker.seen(GW, V, T0 + 4_000, sent_ms=T0 + 3_900) == Transition(GW, V, True, "connected", T0 + 4_000)

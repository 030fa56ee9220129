"""Presence: online on first traffic, offline on goodbye, Last Will or heartbeat silence; never twice."""

import pytest

from fleet.gateways.presence import OfflineReason, PresenceTracker, Transition

V = "lakeside"
GW = "gw-01"
T0 = 1_000_000


@pytest.fixture
def tracker() -> PresenceTracker:
    return PresenceTracker(missed_heartbeats=3, default_interval_s=10)


def test_an_unknown_gateway_is_offline(tracker: PresenceTracker) -> None:
    assert not tracker.is_online(GW)
    assert tracker.online_count == 0


def test_first_traffic_brings_a_gateway_online(tracker: PresenceTracker) -> None:
    transition = tracker.seen(GW, V, T0)

    assert transition == Transition(GW, V, True, "connected", T0)
    assert tracker.is_online(GW)
    assert tracker.online_count == 1


def test_further_traffic_is_no_new_transition(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0)

    assert tracker.seen(GW, V, T0 + 1) is None
    assert tracker.seen(GW, V, T0 + 2, interval_s=5) is None
    assert tracker.announced_online(GW, V, seq=10, now_ms=T0 + 3) is None


def test_an_online_presence_brings_a_gateway_online(tracker: PresenceTracker) -> None:
    assert tracker.announced_online(GW, V, seq=1, now_ms=T0) == Transition(GW, V, True, "connected", T0)
    assert tracker.is_online(GW)


@pytest.mark.parametrize("reason", [OfflineReason.SHUTDOWN, OfflineReason.LOST])
def test_a_goodbye_or_a_last_will_takes_a_gateway_offline(tracker: PresenceTracker, reason: OfflineReason) -> None:
    tracker.announced_online(GW, V, seq=1, now_ms=T0)

    transition = tracker.went_offline(GW, V, reason, seq=2, now_ms=T0 + 500)

    assert transition == Transition(GW, V, False, reason, T0 + 500)
    assert not tracker.is_online(GW)
    assert tracker.online_count == 0


def test_going_offline_twice_is_one_transition(tracker: PresenceTracker) -> None:
    tracker.announced_online(GW, V, seq=1, now_ms=T0)
    tracker.went_offline(GW, V, OfflineReason.SHUTDOWN, seq=2, now_ms=T0 + 1)

    assert tracker.went_offline(GW, V, OfflineReason.LOST, seq=3, now_ms=T0 + 2) is None


def test_an_offline_presence_of_a_gateway_never_seen_is_recorded_once(tracker: PresenceTracker) -> None:
    first = tracker.went_offline(GW, V, OfflineReason.LOST, seq=5, now_ms=T0)
    repeat = tracker.went_offline(GW, V, OfflineReason.LOST, seq=5, now_ms=T0 + 1)

    assert first == Transition(GW, V, False, OfflineReason.LOST, T0)
    assert repeat is None
    assert not tracker.is_online(GW)


def test_a_stale_last_will_from_an_older_session_is_ignored(tracker: PresenceTracker) -> None:
    # Session 1: online seq 10, Will seq 11. Session 2: online seq 20, Will seq 21.
    tracker.announced_online(GW, V, seq=10, now_ms=T0)
    tracker.announced_online(GW, V, seq=20, now_ms=T0 + 100)

    late_will = tracker.went_offline(GW, V, OfflineReason.LOST, seq=11, now_ms=T0 + 200)

    assert late_will is None
    assert tracker.is_online(GW)


def test_the_current_sessions_last_will_is_applied(tracker: PresenceTracker) -> None:
    tracker.announced_online(GW, V, seq=20, now_ms=T0)

    transition = tracker.went_offline(GW, V, OfflineReason.LOST, seq=21, now_ms=T0 + 100)

    assert transition == Transition(GW, V, False, OfflineReason.LOST, T0 + 100)


def test_a_stale_online_after_a_newer_goodbye_is_ignored(tracker: PresenceTracker) -> None:
    tracker.announced_online(GW, V, seq=10, now_ms=T0)
    tracker.went_offline(GW, V, OfflineReason.SHUTDOWN, seq=30, now_ms=T0 + 100)

    assert tracker.announced_online(GW, V, seq=10, now_ms=T0 + 200) is None
    assert not tracker.is_online(GW)


def test_a_new_session_after_a_last_will_comes_back_online(tracker: PresenceTracker) -> None:
    tracker.announced_online(GW, V, seq=10, now_ms=T0)
    tracker.went_offline(GW, V, OfflineReason.LOST, seq=11, now_ms=T0 + 100)

    transition = tracker.announced_online(GW, V, seq=12, now_ms=T0 + 200)

    assert transition == Transition(GW, V, True, "connected", T0 + 200)


def test_silence_for_missed_heartbeats_times_intervals_takes_a_gateway_offline(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0, interval_s=2)

    assert tracker.expire(T0 + 5_999) == []
    assert tracker.is_online(GW)
    assert tracker.expire(T0 + 6_000) == [Transition(GW, V, False, OfflineReason.HEARTBEAT_TIMEOUT, T0 + 6_000)]
    assert not tracker.is_online(GW)


def test_a_timed_out_gateway_is_not_expired_again(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0, interval_s=2)
    tracker.expire(T0 + 6_000)

    assert tracker.expire(T0 + 60_000) == []


def test_the_default_interval_applies_until_the_first_heartbeat(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0)

    assert tracker.expire(T0 + 29_999) == []
    assert len(tracker.expire(T0 + 30_000)) == 1


def test_each_heartbeat_pushes_the_deadline_back(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0, interval_s=1)
    tracker.seen(GW, V, T0 + 2_000)
    tracker.seen(GW, V, T0 + 4_000)

    assert tracker.expire(T0 + 6_999) == []
    assert len(tracker.expire(T0 + 7_000)) == 1


def test_the_latest_heartbeat_interval_wins(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0, interval_s=1)
    tracker.seen(GW, V, T0, interval_s=60)

    assert tracker.expire(T0 + 179_999) == []


def test_fractional_missed_heartbeats_are_honoured() -> None:
    tracker = PresenceTracker(missed_heartbeats=1.5, default_interval_s=10)
    tracker.seen(GW, V, T0, interval_s=1)

    assert tracker.expire(T0 + 1_499) == []
    assert len(tracker.expire(T0 + 1_500)) == 1


def test_traffic_after_a_timeout_brings_the_gateway_back(tracker: PresenceTracker) -> None:
    tracker.seen(GW, V, T0, interval_s=1)
    tracker.expire(T0 + 3_000)

    assert tracker.seen(GW, V, T0 + 4_000) == Transition(GW, V, True, "connected", T0 + 4_000)


def test_expiry_only_concerns_the_silent_gateways() -> None:
    tracker = PresenceTracker(missed_heartbeats=2, default_interval_s=10)
    tracker.seen("gw-quiet", V, T0, interval_s=1)
    tracker.seen("gw-chatty", "riverside", T0, interval_s=1)
    tracker.seen("gw-chatty", "riverside", T0 + 1_500)
    tracker.went_offline("gw-gone", V, OfflineReason.SHUTDOWN, seq=1, now_ms=T0)

    expired = tracker.expire(T0 + 2_000)

    assert expired == [Transition("gw-quiet", V, False, OfflineReason.HEARTBEAT_TIMEOUT, T0 + 2_000)]
    assert tracker.online_count == 1
    assert tracker.is_online("gw-chatty")

"""Judging a source's clock against the receiver's: the window's ends, and what replaces a time outside it."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.bounds import MAX_EPOCH_MS
from protocol.clock import SourceWindow, judge_source_time

RECEIVED = 1_700_000_000_000
WINDOW = SourceWindow(max_age_ms=7 * 86_400_000, max_ahead_ms=300_000)


@pytest.mark.parametrize(
    ("source", "taken"),
    [
        (RECEIVED, RECEIVED),
        (RECEIVED - 7 * 86_400_000, RECEIVED - 7 * 86_400_000),  # the oldest a buffer may replay
        (RECEIVED + 300_000, RECEIVED + 300_000),  # the most a clock may run ahead
        (RECEIVED - 3 * 3_600_000, RECEIVED - 3 * 3_600_000),  # an outage of hours, replayed
    ],
)
def test_a_source_time_within_the_window_stands(source: int, taken: int) -> None:
    judged = WINDOW.judge(source, RECEIVED)

    assert (judged.ms, judged.skewed, judged.offset_ms) == (taken, False, source - RECEIVED)


@pytest.mark.parametrize(
    "source",
    [0, RECEIVED - 7 * 86_400_000 - 1, RECEIVED + 300_001, RECEIVED + 86_400_000, MAX_EPOCH_MS],
    ids=["epoch", "just-too-old", "just-too-far-ahead", "a-day-ahead", "year-9999"],
)
def test_a_source_time_outside_the_window_is_replaced_by_the_receipt_time(source: int) -> None:
    judged = judge_source_time(source, RECEIVED, max_age_ms=7 * 86_400_000, max_ahead_ms=300_000)

    assert judged.skewed
    assert judged.ms == RECEIVED
    assert judged.offset_ms == source - RECEIVED


@given(
    source=st.integers(min_value=0, max_value=MAX_EPOCH_MS), received=st.integers(min_value=0, max_value=MAX_EPOCH_MS)
)
def test_the_time_taken_is_never_further_from_receipt_than_the_window(source: int, received: int) -> None:
    judged = WINDOW.judge(source, received)

    assert -WINDOW.max_age_ms <= judged.ms - received <= WINDOW.max_ahead_ms
    assert judged.ms in (source, received)


def test_a_window_cannot_reach_a_negative_way() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        SourceWindow(max_age_ms=-1, max_ahead_ms=0)

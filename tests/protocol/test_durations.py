"""The one duration grammar of every command line: what it reads, what it refuses and why, and that what it
writes reads back."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.bounds import MAX_SAFE_INTEGER
from protocol.durations import DurationError, format_duration_ms, parse_duration_ms, parse_duration_s

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("90", 90 * SECOND),  # a plain number is seconds
        ("90s", 90 * SECOND),
        ("30m", 30 * MINUTE),
        ("2h", 2 * HOUR),
        ("7d", 7 * DAY),
        ("500ms", 500),
        ("1h30m", HOUR + 30 * MINUTE),
        ("2d12h", 2 * DAY + 12 * HOUR),
        ("1d2h3m4s5ms", DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND + 5),
        ("1m5s", MINUTE + 5 * SECOND),  # m then s, not ms
        ("2h05m", 2 * HOUR + 5 * MINUTE),  # as the CLI prints an age
        ("1.5h", HOUR + 30 * MINUTE),
        ("2.5", 2500),
        ("0", 0),
        ("0s", 0),
        ("  1h 30m ", HOUR + 30 * MINUTE),
        ("2H", 2 * HOUR),
        ("1M30S", MINUTE + 30 * SECOND),
    ],
)
def test_a_duration_is_read_in_milliseconds(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_seconds_are_the_same_duration() -> None:
    assert parse_duration_s("1m30s") == 90.0
    assert parse_duration_s("250ms") == 0.25


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("soon", "'soon' is not a duration: write one like 90s, 30m, 2h, 7d or 1h30m (a plain number is seconds)"),
        ("", "an empty duration: write one like 90s, 30m"),
        ("   ", "an empty duration"),
        ("5y", "'5y': unknown unit 'y'; use d, h, m, s or ms"),
        ("2hours", "'2hours': unknown unit 'hours'"),
        ("1h30", "'1h30': give every part of a duration its unit (d, h, m, s or ms), like 1h30m"),
        ("30m1h", "'30m1h': write the units largest first and each once, like 1h30m or 2d12h"),
        ("1m1m", "'1m1m': write the units largest first and each once"),
        ("-5m", "'-5m': a duration cannot be negative"),
        ("1.h", "'1.h' is not a duration"),
        ("0.0001s", "'0.0001s' is finer than a millisecond"),
        ("h", "'h' is not a duration"),
        ("٣s", "'٣s' is not a duration"),  # digits are ASCII digits
        ("9" * 30 + "d", "is longer than any duration Outpost keeps"),
        ("1" * 100, "is too long to be a duration"),
    ],
)
def test_what_is_no_duration_is_refused_saying_why(text: str, complaint: str) -> None:
    with pytest.raises(DurationError) as refused:
        parse_duration_ms(text)

    assert complaint in str(refused.value)
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (500, "500ms"), (90 * SECOND, "1m30s"), (HOUR + 30 * MINUTE, "1h30m"), (7 * DAY, "7d")],
)
def test_a_duration_is_written_largest_unit_first(ms: int, text: str) -> None:
    assert format_duration_ms(ms) == text


def test_a_negative_duration_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        format_duration_ms(-1)


@given(st.integers(min_value=0, max_value=MAX_SAFE_INTEGER))
def test_what_is_written_reads_back(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(ms)) == ms

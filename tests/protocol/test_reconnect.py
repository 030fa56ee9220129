"""Reconnect policy: jittered exponential backoff, and which broker refusals are permanent."""

import random
from enum import Enum, IntEnum
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from protocol.reconnect import PERMANENT_CONNECT_CODES, Backoff, is_permanent_refusal, refusal_code


class HighestRandom(random.Random):
    """Always jitters to the top of the range, so a delay shows its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class LowestRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_backoff_doubles_from_base_until_capped() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, rng=HighestRandom())

    delays = [backoff.next_delay() for _ in range(9)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_backoff_never_waits_less_than_half_the_ceiling() -> None:
    backoff = Backoff(base_s=1.0, cap_s=10.0, rng=LowestRandom())

    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


@given(
    base_s=st.floats(min_value=0.001, max_value=10),
    cap_s=st.floats(min_value=0.001, max_value=1000),
    seed=st.integers(),
    retries=st.integers(min_value=1, max_value=80),
)
def test_backoff_delays_are_jittered_within_half_to_full_ceiling(
    base_s: float, cap_s: float, seed: int, retries: int
) -> None:
    backoff = Backoff(base_s=base_s, cap_s=cap_s, rng=random.Random(seed))

    for attempt in range(retries):
        ceiling = min(cap_s, base_s * 2 ** min(attempt, 32))
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_jitter_varies_between_retries() -> None:
    backoff = Backoff(base_s=30.0, cap_s=30.0, rng=random.Random(1))

    delays = {backoff.next_delay() for _ in range(20)}

    assert len(delays) > 1


def test_backoff_survives_very_many_retries_at_the_cap() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, rng=HighestRandom())

    delays = [backoff.next_delay() for _ in range(10_000)]

    assert delays[-1] == 30.0
    assert backoff.attempt == 32


def test_reset_starts_again_from_the_base_delay() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, rng=HighestRandom())
    for _ in range(5):
        backoff.next_delay()

    backoff.reset()

    assert backoff.attempt == 0
    assert [backoff.next_delay(), backoff.next_delay()] == [0.5, 1.0]


def test_backoff_can_resume_from_a_given_attempt() -> None:
    backoff = Backoff(base_s=1.0, cap_s=300.0, rng=HighestRandom(), attempt=3)

    assert backoff.next_delay() == 8.0


class _Rc(IntEnum):
    NOT_AUTHORISED = 5


class _NamedCode(Enum):
    BANNED = 138


class _WithTextValue:
    value: ClassVar[str] = "not authorised"


class _WithIntValue:
    value: ClassVar[int] = 134


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (4, 4),
        (0, 0),
        (_Rc.NOT_AUTHORISED, 5),
        (_NamedCode.BANNED, 138),
        (_WithIntValue(), 134),
        (_WithTextValue(), None),
        (None, None),
        ("5", None),
        (object(), None),
    ],
)
def test_refusal_code_reads_ints_and_objects_with_an_int_value(reason: object, expected: int | None) -> None:
    assert refusal_code(reason) == expected


def test_refusal_code_reads_a_paho_reason_code() -> None:
    reason = ReasonCode(PacketTypes.CONNACK, "Bad user name or password")

    assert refusal_code(reason) == 134
    assert is_permanent_refusal(refusal_code(reason))


@pytest.mark.parametrize("code", sorted(PERMANENT_CONNECT_CODES))
def test_credential_and_authorisation_refusals_are_permanent(code: int) -> None:
    assert is_permanent_refusal(code)


def test_the_permanent_codes_are_the_mqtt_credential_refusals() -> None:
    assert frozenset({4, 5, 134, 135, 138}) == PERMANENT_CONNECT_CODES


@pytest.mark.parametrize("code", [None, 0, 1, 2, 3, 7, 128, 131, 136, 137, 159])
def test_other_refusals_are_worth_retrying(code: int | None) -> None:
    assert not is_permanent_refusal(code)

"""Reconnect policy shared by every MQTT client: exponential backoff with jitter, and which
connection refusals are permanent (bad credentials, not authorised) rather than worth retrying."""

import random
from dataclasses import dataclass, field
from typing import Final

# MQTT 3.1.1 CONNACK codes 4 (bad user name or password) and 5 (not authorised);
# MQTT 5 reason codes 134 (bad user name or password), 135 (not authorised) and 138 (banned).
PERMANENT_CONNECT_CODES: Final = frozenset({4, 5, 134, 135, 138})


def refusal_code(reason: object) -> int | None:
    """The numeric code of a client library's refusal (an int, or an object with an int ``value``)."""
    if isinstance(reason, int):
        return reason
    value = getattr(reason, "value", None)
    return value if isinstance(value, int) else None


def is_permanent_refusal(code: int | None) -> bool:
    """Whether a broker's refusal code means retrying with the same credentials cannot succeed."""
    return code in PERMANENT_CONNECT_CODES


@dataclass(slots=True)
class Backoff:
    """Delays for successive retries: uniform in [c/2, c] with ``c = min(cap, base * 2**attempt)``
    ("equal jitter": never much shorter than the schedule, yet spread so clients don't retry in step)."""

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0

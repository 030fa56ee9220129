"""One way to write a duration, for every Outpost command line: ``90s``, ``30m``, ``2h``, ``7d``, ``1h30m``, ``90``.

A duration is one or more amounts, each with a unit, largest unit first and each unit once: ``d`` (days),
``h`` (hours), ``m`` (minutes), ``s`` (seconds), ``ms`` (milliseconds). A plain number is seconds. An amount
may have a decimal part (``1.5h``) down to the millisecond; case and spaces between the parts do not matter
(``1h 30m``). :func:`format_duration_ms` writes a duration back in the same grammar (``5400000`` ms:
``1h30m``), so what a command prints can be given to another.

Durations are milliseconds, the contract's unit of time (:mod:`protocol.clock`); nothing here knows what
they are for: a command checks its own bounds.
"""

import re
from decimal import Decimal
from typing import Final

from protocol.bounds import MAX_SAFE_INTEGER
from protocol.errors import ProtocolError

UNIT_MS: Final = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
"""Each unit in milliseconds, largest first: the order a duration's parts are written in."""
EXAMPLES: Final = "90s, 30m, 2h, 7d or 1h30m (a plain number is seconds)"

_PART: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_LONGEST: Final = 64
_UNIT_ORDER: Final = list(UNIT_MS)


class DurationError(ProtocolError, ValueError):
    """Text that is not a duration; the message quotes it and says what a duration looks like."""


def parse_duration_ms(text: str) -> int:
    """The duration ``text`` writes, in milliseconds; :class:`DurationError` saying why when it writes none."""
    shown = repr(text if len(text) <= 40 else text[:39] + "…")
    if not text.strip():
        raise DurationError(f"an empty duration: write one like {EXAMPLES}")
    if len(text) > _LONGEST:
        raise DurationError(f"{shown} is too long to be a duration")
    if text.strip().startswith("-"):
        raise DurationError(f"{shown}: a duration cannot be negative")
    parts: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise DurationError(f"{shown} is not a duration: write one like {EXAMPLES}")
        parts.append((match.group(1), match.group(2).lower()))
        position = match.end()
    total = Decimal(0)
    previous = -1
    for amount, unit in parts:
        if not unit and len(parts) > 1:
            raise DurationError(f"{shown}: give every part of a duration its unit (d, h, m, s or ms), like 1h30m")
        if unit and unit not in UNIT_MS:
            raise DurationError(f"{shown}: unknown unit {unit!r}; use d, h, m, s or ms, like {EXAMPLES}")
        rank = _UNIT_ORDER.index(unit or "s")
        if rank <= previous:
            raise DurationError(f"{shown}: write the units largest first and each once, like 1h30m or 2d12h")
        previous = rank
        total += Decimal(amount) * UNIT_MS[unit or "s"]
    if total != total.to_integral_value():
        raise DurationError(f"{shown} is finer than a millisecond")
    if total > MAX_SAFE_INTEGER:
        raise DurationError(f"{shown} is longer than any duration Outpost keeps (about 285,000 years)")
    return int(total)


def parse_duration_s(text: str) -> float:
    """:func:`parse_duration_ms` in seconds."""
    return parse_duration_ms(text) / 1000


def format_duration_ms(ms: int) -> str:
    """``ms`` in the grammar :func:`parse_duration_ms` reads, largest units first: ``1h30m``, ``45s``, ``0s``."""
    if ms < 0:
        raise ValueError(f"a duration cannot be negative: {ms} ms")
    if ms == 0:
        return "0s"
    parts: list[str] = []
    rest = ms
    for unit, size in UNIT_MS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)

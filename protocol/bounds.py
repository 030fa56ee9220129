"""The ranges every number on the wire is held to, defined once and reused by every model of the contract.

A number a payload carries ends up in JSON (exact integers only up to 2**53 - 1), in SQLite and
PostgreSQL ``BIGINT`` columns (signed 64 bits), in InfluxDB (int64, float64) and in Python's
``datetime`` (years 1 to 9999). An integer is therefore kept within JSON's safe range, and each kind of
quantity within what is physically possible for it, so a value that parses cannot overflow a store, a
timer or a message built from it downstream. Floats are finite in every model (``allow_inf_nan=False``
on :class:`~protocol.messages.WireModel` and :class:`~protocol.config_model.ConfigModel`).
"""

from typing import Annotated, Final

from pydantic import Field

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer JSON (IEEE 754 doubles) carries exactly; within SQLite's, PostgreSQL's and InfluxDB's int64."""
MAX_EPOCH_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant Python's ``datetime`` can represent."""
MAX_COUNT: Final = 2**40
"""Messages, readings or events a gateway counts: about 10**12, years of them at any rate a gateway reaches."""
MAX_BYTES: Final = 2**50
"""A size in bytes: one pebibyte, beyond any gateway's storage."""
MAX_UPTIME_S: Final = 100 * 365 * 86_400
"""A process's uptime: a century."""
MAX_RTT_MS: Final = 3_600_000
"""A round-trip time: an hour (an answer later than that is no answer)."""
MIN_INTERVAL_S: Final = 0.1
"""The shortest heartbeat interval: a tenth of a second (tests run gateways at 0.5 s)."""
MAX_INTERVAL_S: Final = 3_600.0
"""The longest heartbeat or telemetry interval: an hour."""
MAX_FRAME_RATE: Final = 240.0
"""Frames a second a camera delivers or a gateway analyses: more than any checkpoint camera sends."""
MAX_FRAME_AGE_S: Final = 10 * 365 * 86_400.0
"""How long ago a camera's last frame arrived: a decade (a camera never seen has no age at all)."""
MIN_TEMPERATURE_C: Final = -100.0
MAX_TEMPERATURE_C: Final = 200.0
"""A board's temperature in °C: colder or hotter than this is a broken sensor, not a reading."""


def refuse_unsafe_integer(value: object) -> object:
    """Refuse an integer outside JSON's safe range; put before a union with a float member (``float | SafeInt``),
    which would otherwise take it as an inexact float."""
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise ValueError(f"integers are limited to ±{MAX_SAFE_INTEGER} (2**53 - 1)")
    return value


SafeInt = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
"""Any integer JSON carries exactly."""
SafeNatural = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
"""A sequence number or a version: 0 up to 2**53 - 1."""
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
ByteCount = Annotated[int, Field(ge=0, le=MAX_BYTES)]
IntervalSeconds = Annotated[float, Field(ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)]
"""How long until the next heartbeat, or between telemetry flushes."""
UptimeSeconds = Annotated[float, Field(ge=0, le=MAX_UPTIME_S)]
RoundTripMillis = Annotated[float, Field(ge=0, le=MAX_RTT_MS)]
Celsius = Annotated[float, Field(ge=MIN_TEMPERATURE_C, le=MAX_TEMPERATURE_C)]
Percent = Annotated[float, Field(ge=0, le=100)]
FrameRate = Annotated[float, Field(ge=0, le=MAX_FRAME_RATE)]
FrameAgeSeconds = Annotated[float, Field(ge=0, le=MAX_FRAME_AGE_S)]

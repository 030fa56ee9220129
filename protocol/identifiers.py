"""Identifier and value types shared by topics and payloads.

Identifiers become MQTT topic levels, so they are restricted to a safe alphabet: lower-case
ASCII letters, digits, ``-`` and ``_``, starting with a letter or digit, at most 64 characters.
That keeps them free of the MQTT wildcards (``+``, ``#``), of ``/`` and of ``$``.
"""

import re
from typing import Annotated, Final

from pydantic import Field, StringConstraints

from protocol.bounds import MAX_EPOCH_MS

IDENTIFIER_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"
IDENTIFIER_RE: Final = re.compile(IDENTIFIER_PATTERN)
IDENTIFIER_RULE: Final = "use a-z, 0-9, '-' and '_', starting with a letter or digit, at most 64 characters"
"""What :data:`IDENTIFIER_PATTERN` asks, in words, for people who gave something else."""

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
VillageId = Identifier
GatewayId = Identifier
DeviceId = Identifier
GridId = Identifier

MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A telemetry metric name; it becomes a time-series field name, so it is kept identifier-safe."""

EpochMillis = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS)]
"""A UTC instant as integer milliseconds since the Unix epoch, taken at the source, up to the end of year 9999."""

ShortText = Annotated[str, StringConstraints(max_length=256)]

FIRMWARE_VERSION_PATTERN: Final = r"^[!-\[\]-~]{1,64}$"
FIRMWARE_VERSION_RE: Final = re.compile(FIRMWARE_VERSION_PATTERN)
FirmwareVersion = Annotated[str, StringConstraints(pattern=FIRMWARE_VERSION_PATTERN)]
"""A sensor node's firmware version as its gateway reports it: 1-64 visible ASCII characters but ``\\``.
It becomes a time-series tag (line protocol cannot carry a newline in one, and a trailing backslash would
escape the separator after it), and 256 of them must fit a heartbeat beside the rest of its health."""


def is_identifier(value: str) -> bool:
    """Whether ``value`` is usable as a village, gateway, device or grid id."""
    return IDENTIFIER_RE.fullmatch(value) is not None


def is_firmware_version(value: str) -> bool:
    """Whether ``value`` is usable as a :data:`FirmwareVersion` (a node may report anything up to 256 characters)."""
    return FIRMWARE_VERSION_RE.fullmatch(value) is not None


KEY_ID_PATTERN: Final = r"^[0-9a-f]{16}$"
"""A signing key's fingerprint: 16 hex digits of the SHA-256 of its raw public key."""
KeyId = Annotated[str, StringConstraints(pattern=KEY_ID_PATTERN)]

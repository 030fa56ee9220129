"""Config layers: part of a gateway config set for a county, a town, a village or one gateway.

A layer holds only the keys it sets (a partial :class:`~protocol.gateway_config.GatewayConfig` as JSON).
It is checked on its own when written: merged onto the model's defaults it must validate, so unknown
keys, values of the wrong type or out of range, and half-declared devices are refused at any depth.
Whether it fits with the other layers of every gateway it reaches is checked by :mod:`fleet.configs.desired`.
"""

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from fleet.configs.resolve import merge_layers, validated
from fleet.errors import InvalidRequestError

MAX_LAYER_BYTES: Final = 128 * 1024
"""A layer larger than this could never fit the gateway's message limit (64 KiB) anyway."""
MAX_DEPTH: Final = 12
"""GatewayConfig nests six levels deep (devices → detection → zones → points); deeper is never valid."""


class Scope(StrEnum):
    """Where a layer applies, from the most general (applied first) to the most specific (applied last)."""

    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"
    GATEWAY = "gateway"


SCOPE_ORDER: Final = (Scope.COUNTY, Scope.TOWN, Scope.VILLAGE, Scope.GATEWAY)
LayerKey = tuple[Scope, str]


def check_overrides(overrides: Mapping[str, Any], key: LayerKey) -> dict[str, Any]:
    """``overrides`` as a layer may hold them, or :class:`InvalidRequestError` saying what is wrong."""
    label = f"{key[0].value} layer {key[1]!r}"
    if _depth(overrides) > MAX_DEPTH:
        raise InvalidRequestError(f"{label} nests deeper than any gateway config ({MAX_DEPTH} levels)")
    try:
        size = len(json.dumps(overrides, allow_nan=False))
    except ValueError as exc:
        raise InvalidRequestError(f"{label} is not plain JSON: {exc}") from None
    if size > MAX_LAYER_BYTES:
        raise InvalidRequestError(f"{label} is {size} bytes of JSON, over the {MAX_LAYER_BYTES}-byte limit")
    try:
        validated(merge_layers([overrides]))
    except ValueError as exc:
        raise InvalidRequestError(f"{label} is not a valid part of a gateway config: {exc}") from None
    return dict(overrides)


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level

"""A layer is checked on its own when written: only keys and values a gateway config can hold."""

from typing import Any

import pytest

from fleet.configs.layers import GATEWAY_CONFIG, MAX_LAYER_BYTES
from fleet.errors import InvalidRequestError
from fleet.layers.scope import Scope

KEY = (Scope.VILLAGE, "shiqiao")


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"heartbeat_interval_s": 30},
        {"snapshots": {"enabled": False}},
        {"devices": [{"kind": "door_contact", "id": "door-1", "door": {"held_open_s": 60}}]},
    ],
)
def test_a_partial_config_is_a_valid_layer(overrides: dict[str, Any]) -> None:
    assert GATEWAY_CONFIG.check(overrides, KEY) == overrides


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"heartbeat_interval": 30}, "heartbeat_interval: Extra inputs are not permitted"),
        ({"snapshots": {"enable": False}}, "snapshots.enable: Extra inputs are not permitted"),
        ({"devices": [{"kind": "panic_button"}]}, "devices.0.id: Field required"),
        ({"devices": [{"kind": "panic_button", "id": "p", "door": {}}]}, "only door contacts take a door policy"),
        ({"telemetry_interval_s": 0}, "telemetry_interval_s: Input should be greater than or equal to 0.1"),
        ({"snapshots": {"retention_s": 1e308 * 10}}, "not plain JSON"),
        (
            {"snapshots": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": 1}}}}}}}}}}}}},
            "deeper",
        ),
        ({"devices": [{"kind": "panic_button", "id": "p", "params": {"x": "y" * MAX_LAYER_BYTES}}]}, "bytes of JSON"),
    ],
)
def test_an_unknown_key_or_a_bad_value_is_refused_naming_it(overrides: dict[str, Any], complaint: str) -> None:
    with pytest.raises(InvalidRequestError, match="village config layer 'shiqiao'") as refused:
        GATEWAY_CONFIG.check(overrides, KEY)

    assert complaint in str(refused.value)

"""Resolving a gateway's config layers over the model's defaults, and its digest."""

from typing import Any

import pytest

from fleet.configs.layers import GATEWAY_CONFIG
from fleet.configs.resolve import digest
from protocol.gateway_config import GatewayConfig


def test_layers_resolve_over_the_models_defaults_most_general_first() -> None:
    county = {"heartbeat_interval_s": 30.0, "snapshots": {"retention_s": 3600.0}}
    village = {"heartbeat_interval_s": 15.0, "snapshots": {"enabled": False}}
    gateway = {"devices": [{"kind": "panic_button", "id": "panic-1"}]}

    config = GATEWAY_CONFIG.resolve([county, village, gateway])

    assert config.heartbeat_interval_s == 15.0
    assert config.telemetry_interval_s == GatewayConfig().telemetry_interval_s
    assert (config.snapshots.enabled, config.snapshots.retention_s) == (False, 3600.0)
    assert [device.id for device in config.devices] == ["panic-1"]


def test_a_layer_repeating_a_default_resolves_to_the_same_digest() -> None:
    assert digest(GATEWAY_CONFIG.resolve([{"heartbeat_interval_s": 10.0}])) == digest(GATEWAY_CONFIG.resolve([{}]))
    assert digest(GATEWAY_CONFIG.resolve([{"heartbeat_interval_s": 10}])) == digest(
        GATEWAY_CONFIG.resolve([{}])
    )  # an int for a float
    assert digest(GATEWAY_CONFIG.resolve([{"heartbeat_interval_s": 11.0}])) != digest(GATEWAY_CONFIG.resolve([{}]))


@pytest.mark.parametrize(
    ("layer", "complaint"),
    [
        ({"heartbeat_interval_s": "10"}, "heartbeat_interval_s"),  # strict, as the gateway's decoder
        ({"heartbeat_interval_s": -1}, "heartbeat_interval_s"),
        ({"snapshots": {"kept_for": 3}}, "snapshots.kept_for"),
        ({"devices": [{"kind": "panic_button", "id": "a"}, {"kind": "siren", "id": "a"}]}, "unique"),
    ],
)
def test_a_config_the_gateway_would_refuse_does_not_resolve(layer: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        GATEWAY_CONFIG.resolve([layer])


def test_the_merge_starts_from_every_default() -> None:
    assert GATEWAY_CONFIG.merge([]) == GatewayConfig().model_dump(mode="json")

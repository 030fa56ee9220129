"""Resolving layers: a deep merge where later layers win and lists are replaced whole."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.configs.resolve import deep_merge, digest, merge_layers, resolve
from protocol.gateway_config import GatewayConfig

_KEYS = st.sampled_from(["a", "b", "c", "d"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=12,
)
_DOCUMENTS = st.dictionaries(_KEYS, _VALUES, max_size=4)


@pytest.mark.parametrize(
    ("base", "override", "merged"),
    [
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"s": {"x": 1, "y": 2}}, {"s": {"y": 3}}, {"s": {"x": 1, "y": 3}}),
        ({"s": {"x": {"deep": 1, "keep": 2}}}, {"s": {"x": {"deep": 9}}}, {"s": {"x": {"deep": 9, "keep": 2}}}),
        ({"devices": [{"id": "a"}, {"id": "b"}]}, {"devices": [{"id": "c"}]}, {"devices": [{"id": "c"}]}),
        ({"devices": [{"id": "a"}]}, {"devices": []}, {"devices": []}),
        ({"s": {"x": 1}}, {"s": None}, {"s": None}),
        ({"s": None}, {"s": {"x": 1}}, {"s": {"x": 1}}),
        ({"s": {"x": 1}}, {"s": [1]}, {"s": [1]}),
    ],
)
def test_a_later_layer_wins_mappings_merge_and_lists_are_replaced_whole(
    base: dict[str, Any], override: dict[str, Any], merged: dict[str, Any]
) -> None:
    assert deep_merge(base, override) == merged


@given(_DOCUMENTS, _DOCUMENTS)
def test_every_key_of_the_later_layer_wins_unless_both_are_mappings(base: dict[str, Any], over: dict[str, Any]) -> None:
    merged = deep_merge(base, over)

    assert set(merged) == set(base) | set(over)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert merged[key] == deep_merge(base[key], value)
        else:
            assert merged[key] == value
    for key in set(base) - set(over):
        assert merged[key] == base[key]


@given(_DOCUMENTS, _DOCUMENTS, _DOCUMENTS)
def test_merging_nothing_changes_nothing_and_inputs_are_left_alone(
    a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]
) -> None:
    before = (repr(a), repr(b), repr(c))

    deep_merge(deep_merge(a, b), c)
    assert deep_merge(a, {}) == a
    assert deep_merge({}, a) == a
    assert (repr(a), repr(b), repr(c)) == before


def test_layers_resolve_over_the_models_defaults_most_general_first() -> None:
    county = {"heartbeat_interval_s": 30.0, "snapshots": {"retention_s": 3600.0}}
    village = {"heartbeat_interval_s": 15.0, "snapshots": {"enabled": False}}
    gateway = {"devices": [{"kind": "panic_button", "id": "panic-1"}]}

    config = resolve([county, village, gateway])

    assert config.heartbeat_interval_s == 15.0
    assert config.telemetry_interval_s == GatewayConfig().telemetry_interval_s
    assert (config.snapshots.enabled, config.snapshots.retention_s) == (False, 3600.0)
    assert [device.id for device in config.devices] == ["panic-1"]


def test_a_layer_repeating_a_default_resolves_to_the_same_digest() -> None:
    assert digest(resolve([{"heartbeat_interval_s": 10.0}])) == digest(resolve([{}]))
    assert digest(resolve([{"heartbeat_interval_s": 10}])) == digest(resolve([{}]))  # an int for a float
    assert digest(resolve([{"heartbeat_interval_s": 11.0}])) != digest(resolve([{}]))


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
        resolve([layer])


def test_the_merge_starts_from_every_default() -> None:
    assert merge_layers([]) == GatewayConfig().model_dump(mode="json")

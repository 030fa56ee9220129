"""The one layering mechanism: a deep merge where later layers win and lists are replaced whole, a layer checked
on its own (scope, depth, size, validity), a chain resolved strictly or leaving out the layers that do not fit, and
the layers that reach a place."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from fleet.errors import InvalidRequestError
from fleet.layers.document import LayeredModel, deep_merge
from fleet.layers.scope import GatewayPlace, Place, Scope

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


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: int = Field(default=1, ge=0)
    high: int = Field(default=10, ge=0)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    limits: _Limits = Field(default_factory=_Limits)


def _ordered(doc: _Doc) -> str | None:
    return "limits: low is above high" if doc.limits.low > doc.limits.high else None


KIND = LayeredModel(
    "test layer", _Doc, scopes=(Scope.COUNTY, Scope.VILLAGE), max_bytes=200, max_depth=3, also_check=_ordered
)
COUNTY, VILLAGE = (Scope.COUNTY, "anxi"), (Scope.VILLAGE, "shiqiao")


@pytest.mark.parametrize(
    ("key", "overrides", "complaint"),
    [
        ((Scope.TOWN, "hutou"), {}, "town test layer 'hutou': a test layer is set for a county or village only"),
        (VILLAGE, {"limits": {"low": {"a": {"b": 1}}}}, "nests deeper than any valid one (3 levels)"),
        (VILLAGE, {"name": "x" * 300}, "bytes of JSON, over the 200-byte limit"),
        (VILLAGE, {"limits": {"lo": 1}}, "limits.lo: Extra inputs are not permitted"),
        (VILLAGE, {"limits": {"low": 20}}, "limits: low is above high"),
        (VILLAGE, {"limits": {"low": float("nan")}}, "not plain JSON"),
    ],
)
def test_a_layer_is_checked_on_its_own_naming_where_it_is_wrong(
    key: tuple[Scope, str], overrides: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        KIND.check(overrides, key)

    assert complaint in str(refused.value)


def test_a_chain_resolves_over_the_defaults_and_one_that_does_not_fit_is_left_out_leniently() -> None:
    fits = {"limits": {"high": 5}}
    clashes = {"limits": {"low": 7}}  # fine alone (7 <= 10), not over the county's high of 5

    assert KIND.resolve([fits, {"name": "shiqiao"}]) == _Doc(name="shiqiao", limits=_Limits(high=5))
    with pytest.raises(ValueError, match="low is above high"):
        KIND.resolve([fits, clashes])
    resolved = KIND.resolve_leniently([(COUNTY, fits), (VILLAGE, clashes)])
    assert (resolved.value, resolved.applied) == (_Doc(limits=_Limits(high=5)), (COUNTY,))
    assert resolved.ignored == {VILLAGE: "limits: low is above high"}


def test_the_layers_that_reach_a_place_most_general_first() -> None:
    layers = {(scope, name): name for scope, name in [(Scope.COUNTY, "anxi"), (Scope.TOWN, "hutou"),
              (Scope.VILLAGE, "shiqiao"), (Scope.GATEWAY, "gw-1"), (Scope.VILLAGE, "other")]}  # fmt: skip

    assert [value for _, value in Place("shiqiao", "hutou", "anxi").chain(layers)] == ["anxi", "hutou", "shiqiao"]
    assert [value for _, value in GatewayPlace("shiqiao", None, None, "gw-1").chain(layers)] == ["shiqiao", "gw-1"]

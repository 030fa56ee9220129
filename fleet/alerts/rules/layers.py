"""Alert rule layers: part of the rules set for a county, a town or a village, and how a village's layers resolve.

A layer holds only the keys it sets (a partial :class:`~fleet.alerts.rules.model.AlertRules` as JSON). It
is checked on its own when written: merged onto the defaults it must validate strictly, so unknown keys,
values of the wrong type or out of range, unknown kinds, severities and time zones are refused at any depth
with one line naming where. Resolution is the config layers' deep merge (:func:`fleet.configs.resolve.deep_merge`):
defaults ← county ← town ← village, mappings merged key by key, so a village that changes one kind keeps its
county's rules for the others, and one field of a kind keeps the kind's other fields.

Objects that have no default (``quiet_hours``, a kind's ``rate_limit``) must be given whole in a layer: a layer
that set only ``quiet_hours.end`` would mean nothing in a village whose town sets no quiet hours.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from fleet.alerts.rules.model import DEFAULT_RULES, AlertRules
from fleet.configs.resolve import deep_merge, summary
from fleet.errors import InvalidRequestError

MAX_LAYER_BYTES: Final = 32 * 1024
"""Every alert kind with every field set is about 4 KiB of JSON; a layer eight times that is a mistake."""


class RuleScope(StrEnum):
    """Where a rule layer applies, from the most general (applied first) to the most specific."""

    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"


RuleLayerKey = tuple[RuleScope, str]
Overrides = Mapping[str, Any]
_DEFAULTS: Final = DEFAULT_RULES.model_dump(mode="json")


def label(key: RuleLayerKey) -> str:
    return f"{key[0].value} alert rules {key[1]!r}"


def check_layer(overrides: Overrides, key: RuleLayerKey) -> dict[str, Any]:
    """``overrides`` as a layer may hold them, or :class:`InvalidRequestError` saying in one line what is wrong."""
    try:
        size = len(json.dumps(overrides, allow_nan=False))
    except (ValueError, RecursionError) as exc:  # NaN, infinity, or nested past any rule's depth
        raise InvalidRequestError(f"{label(key)} is not plain JSON: {exc}") from None
    if size > MAX_LAYER_BYTES:
        raise InvalidRequestError(f"{label(key)} is {size} bytes of JSON, over the {MAX_LAYER_BYTES}-byte limit")
    try:
        validated(deep_merge(_DEFAULTS, overrides))
    except ValueError as exc:
        raise InvalidRequestError(f"{label(key)} is not valid: {exc}") from None
    return dict(overrides)


def validated(document: Overrides) -> AlertRules:
    """``document`` as :class:`AlertRules`, validated strictly as JSON; :class:`ValueError` with a one-line summary."""
    try:
        return AlertRules.model_validate_json(json.dumps(document, allow_nan=False), strict=True)
    except ValidationError as exc:
        raise ValueError(summary(exc)) from None


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a chain of layers makes: the rules, the layers that contributed, and those left out and why."""

    rules: AlertRules
    applied: tuple[RuleLayerKey, ...] = ()
    ignored: dict[RuleLayerKey, str] = field(default_factory=dict)


def resolve(layers: Iterable[tuple[RuleLayerKey, Overrides]], base: AlertRules = DEFAULT_RULES) -> Resolved:
    """The rules ``layers`` (most general first) make over ``base`` (the fleet's settings' rules).

    Never raises: a layer that no longer validates (stored before the model changed, or one that does not
    fit the layers above it) is left out, the others still apply, and the reason is returned. Alerting must
    go on by the best rules at hand rather than stop on a bad layer."""
    document: dict[str, Any] = base.model_dump(mode="json")
    rules = base
    applied: list[RuleLayerKey] = []
    ignored: dict[RuleLayerKey, str] = {}
    for key, overrides in layers:
        candidate = deep_merge(document, overrides)
        try:
            rules = validated(candidate)
        except ValueError as exc:
            ignored[key] = str(exc)
            continue
        document = candidate
        applied.append(key)
    return Resolved(rules, tuple(applied), ignored)


@dataclass(frozen=True, slots=True)
class VillagePlace:
    """A village and its town and county (a village not yet placed in a town has neither)."""

    village_id: str
    town_id: str | None
    county_id: str | None

    def layer_keys(self) -> list[RuleLayerKey]:
        """The layers that reach this village, most general first."""
        keys: list[RuleLayerKey] = []
        if self.county_id is not None:
            keys.append((RuleScope.COUNTY, self.county_id))
        if self.town_id is not None:
            keys.append((RuleScope.TOWN, self.town_id))
        keys.append((RuleScope.VILLAGE, self.village_id))
        return keys


def chain(place: VillagePlace, layers: Mapping[RuleLayerKey, Overrides]) -> Sequence[tuple[RuleLayerKey, Overrides]]:
    """The layers of ``layers`` that reach ``place``, most general first."""
    return [(key, layers[key]) for key in place.layer_keys() if key in layers]

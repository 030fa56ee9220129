"""Alert rule layers: part of the rules set for a county, a town or a village.

A layer holds only the keys it sets (a partial :class:`~fleet.alerts.rules.model.AlertRules` as JSON); it is
checked on its own when written and resolved by the one layering mechanism (:mod:`fleet.layers`): defaults ←
county ← town ← village, mappings merged key by key, so a village that changes one kind keeps its county's rules
for the others, and one field of a kind keeps the kind's other fields. Unknown kinds, severities and time zones
are refused at any depth with one line naming where.

Objects that have no default (``quiet_hours``, a kind's ``rate_limit``) must be given whole in a layer: a layer
that set only ``quiet_hours.end`` would mean nothing in a village whose town sets no quiet hours.
"""

from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from fleet.alerts.rules.model import DEFAULT_RULES, AlertRules
from fleet.errors import AlertRulesSettingsError
from fleet.layers.document import LayeredModel, summary
from fleet.layers.scope import Scope

ALERT_RULES: Final = LayeredModel(
    "alert rules",
    AlertRules,
    scopes=(Scope.COUNTY, Scope.TOWN, Scope.VILLAGE),
    max_bytes=32 * 1024,  # every alert kind with every field set is about 4 KiB of JSON
    max_depth=8,  # kinds → kind → rate limit → field is four levels
    defaults=DEFAULT_RULES,
)
"""The alert rules as layers."""


def base_rules(overrides: Mapping[str, Any]) -> AlertRules:
    """The rules of the fleet's settings (``alerts.rules``, a layer over the defaults) as every village's base.
    Validated as settings are, so ``"120"`` from an environment variable is 120; raises
    :class:`~fleet.errors.AlertRulesSettingsError` saying in one line what is wrong."""
    try:
        return AlertRules.model_validate(ALERT_RULES.merge([overrides]))
    except ValidationError as exc:
        raise AlertRulesSettingsError(f"alerts.rules: {summary(exc)}") from None

"""What the alert rules API shows: a layer as stored, and the rules a village runs by with where they come from."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet.alerts.rules.layers import RuleScope
from fleet.alerts.rules.model import AlertRules
from fleet.db.schema import AlertRuleLayerRow


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class RuleLayerPublic(_Public):
    scope: RuleScope
    scope_id: str
    overrides: dict[str, Any] = Field(description="The part of the alert rules this layer sets.")
    updated_ms: int
    updated_by: str

    @classmethod
    def of(cls, row: AlertRuleLayerRow) -> "RuleLayerPublic":
        return cls(
            scope=RuleScope(row.scope),
            scope_id=row.scope_id,
            overrides=row.overrides,
            updated_ms=row.updated_ms,
            updated_by=row.updated_by,
        )


class IgnoredLayer(_Public):
    scope: RuleScope
    scope_id: str
    reason: str = Field(description="Why the layer does not apply (it no longer validates over the layers above it).")


class VillageRules(_Public):
    """The rules a village's alerting runs by, and the layers they come from."""

    village_id: str
    town_id: str | None
    county_id: str | None
    layers: list[RuleLayerPublic] = Field(description="The layers that contributed, most general first.")
    ignored: list[IgnoredLayer] = Field(description="Layers that reach the village but are left out, and why.")
    rules: AlertRules = Field(description="The defaults with the layers merged on top.")

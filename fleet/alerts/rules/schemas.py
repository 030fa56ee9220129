"""What the alert rules API shows: a layer as stored, and the rules a village runs by with where they come from."""

from pydantic import BaseModel, ConfigDict, Field

from fleet.alerts.rules.model import AlertRules
from fleet.layers.schemas import LayerPublic
from fleet.layers.scope import Scope


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class IgnoredLayer(_Public):
    scope: Scope
    scope_id: str
    reason: str = Field(description="Why the layer does not apply (it no longer validates over the layers above it).")


class VillageRules(_Public):
    """The rules a village's alerting runs by, and the layers they come from."""

    village_id: str
    town_id: str | None
    county_id: str | None
    layers: list[LayerPublic] = Field(description="The layers that contributed, most general first.")
    ignored: list[IgnoredLayer] = Field(description="Layers that reach the village but are left out, and why.")
    rules: AlertRules = Field(description="The defaults with the layers merged on top.")

"""Routes for alert rules: a layer per county, town or village, and the rules a village runs by.

Writing a layer needs ``manage_sites`` (admins) at every scope, the village included. Unlike a village's
gateway config (field work, ``provision``), alert rules decide whether a panic press or a forced door
becomes a case at all, how bad it is and how soon it escalates: county policy, which a technician on site
must not be able to weaken. ``handle_alerts`` (command staff) acts on alerts one by one, not on what
becomes one; ``administer`` is about tokens and the audit log. Reading needs ``read``.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status

from fleet.alerts.rules.schemas import VillageRules
from fleet.api.context import CALLER_RESPONSES, Context, IdPath, Reader, SiteManager
from fleet.layers.schemas import LayerPublic
from fleet.layers.scope import Scope

router = APIRouter(tags=["alert rules"], responses=CALLER_RESPONSES)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown county, town, village or layer"}}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "The layer is not valid alert rules (the reason names where), or too large"}
}


@router.get("/alert-rules/{scope}/{scope_id}", responses={**_NOT_FOUND})
async def get_rule_layer(ctx: Context, _: Reader, scope: Scope, scope_id: IdPath) -> LayerPublic:
    """The layer as stored: only the keys it sets."""
    return await ctx.rules.layer(scope, scope_id)


@router.put("/alert-rules/{scope}/{scope_id}", responses={**_NOT_FOUND, **_INVALID})
async def put_rule_layer(
    ctx: Context,
    actor: SiteManager,
    scope: Scope,
    scope_id: IdPath,
    overrides: Annotated[
        dict[str, Any],
        Body(
            description="The part of the alert rules this layer sets, replacing the layer whole, e.g. "
            '{"kinds": {"camera_offline": {"severity": "minor", "hold_off_s": 300}}}.'
        ),
    ],
) -> LayerPublic:
    """Set a layer; the villages it reaches run by the new rules at once."""
    return await ctx.rules.put_layer(actor, scope, scope_id, overrides)


@router.delete("/alert-rules/{scope}/{scope_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**_NOT_FOUND})
async def delete_rule_layer(ctx: Context, actor: SiteManager, scope: Scope, scope_id: IdPath) -> Response:
    """Remove a layer; the villages it reached fall back on their other layers, or the defaults."""
    await ctx.rules.delete_layer(actor, scope, scope_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/villages/{village_id}/alert-rules", responses={404: {"description": "Unknown village"}})
async def village_rules(ctx: Context, _: Reader, village_id: IdPath) -> VillageRules:
    """The rules a village runs by (defaults ← county ← town ← village) and the layers they come from."""
    return await ctx.rules.village_rules(village_id)

"""Routes for config push: layers (county ← town ← village ← gateway), each gateway's config, and sync status.

Layers for a county or a town reach many gateways at once and are county policy, so they need
``manage_sites`` (admins), like the site hierarchy itself; layers for a village or one gateway are field
work and need ``provision`` (technicians), like recording gateways and devices.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from fleet.access.roles import Actor, Permission
from fleet.access.scope import covers
from fleet.api.context import CALLER_RESPONSES, Context, IdPath, Provisioner, Reader, in_scope
from fleet.configs.schemas import GatewayConfigView, LayerChange, SigningKeyPublic, StatusReport, layer_public
from fleet.configs.state import SyncStatus
from fleet.errors import PermissionDeniedError
from fleet.layers.schemas import LayerPublic
from fleet.layers.scope import Scope
from protocol.identifiers import IDENTIFIER_PATTERN

router = APIRouter(tags=["config"], responses=CALLER_RESPONSES)

IdFilter = Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown county, town, village, gateway or layer"}}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "The layer, or the config it makes for a gateway it reaches, is not valid"}
}
_WRITE_PERMISSION = {
    Scope.COUNTY: Permission.MANAGE_SITES,
    Scope.TOWN: Permission.MANAGE_SITES,
    Scope.VILLAGE: Permission.PROVISION,
    Scope.GATEWAY: Permission.PROVISION,
}


async def _layer_editor(scope: Scope, actor: Provisioner) -> Actor:
    """A caller who may provision, and for a county or town layer manage sites too."""
    needed = _WRITE_PERMISSION[scope]
    if not actor.may(needed):
        raise PermissionDeniedError(f"role {actor.role.value} may not set {scope.value} config layers")
    return actor


LayerEditor = Annotated[Actor, Depends(_layer_editor)]


def _shown_to(actor: Actor) -> bool:
    """Whether ``actor`` sees camera logins in configs: those who set cameras up do; others get them redacted."""
    return actor.may(Permission.PROVISION)


@router.get("/config/layers")
async def list_layers(ctx: Context, actor: Reader, scope: Scope | None = None) -> list[LayerPublic]:
    """Every layer (of its scope, for a scoped token; camera logins shown only to roles that provision)."""
    rows = await in_scope(
        ctx, actor, await ctx.configs.layers(scope), lambda at, row: at.of_layer(row.scope, row.scope_id)
    )
    return [layer_public(row, secrets=_shown_to(actor)) for row in rows]


@router.get("/config/layers/{scope}/{scope_id}", responses={**_NOT_FOUND})
async def get_layer(ctx: Context, actor: Reader, scope: Scope, scope_id: IdPath) -> LayerPublic:
    """One layer (camera logins shown only to roles that provision)."""
    return layer_public(await ctx.configs.layer(scope, scope_id), secrets=_shown_to(actor))


@router.put("/config/layers/{scope}/{scope_id}", responses={**_NOT_FOUND, **_INVALID})
async def put_layer(
    ctx: Context,
    actor: LayerEditor,
    scope: Scope,
    scope_id: IdPath,
    overrides: Annotated[
        dict[str, Any],
        Body(description="The part of the gateway config this layer sets (it replaces the layer whole)."),
    ],
) -> LayerChange:
    """Set a layer; every gateway it reaches gets a new desired config version if its config changes."""
    return await ctx.configs.put_layer(actor, scope, scope_id, overrides)


@router.delete("/config/layers/{scope}/{scope_id}", responses={**_NOT_FOUND, **_INVALID})
async def delete_layer(ctx: Context, actor: LayerEditor, scope: Scope, scope_id: IdPath) -> LayerChange:
    """Remove a layer; the gateways it reached fall back on the other layers (or, with none, are no longer pushed)."""
    return await ctx.configs.delete_layer(actor, scope, scope_id)


@router.get("/gateways/{gateway_id}/config", responses={**_NOT_FOUND})
async def get_gateway_config(ctx: Context, actor: Reader, gateway_id: IdPath) -> GatewayConfigView:
    """The layers that reach a gateway, the config they make, its desired and reported versions and status (camera
    logins shown only to roles that provision)."""
    view = await ctx.configs.gateway_config(gateway_id)
    return view if _shown_to(actor) else view.without_camera_logins()


@router.get("/config/status")
async def config_status(
    ctx: Context,
    actor: Reader,
    village: IdFilter = None,
    town: IdFilter = None,
    county: IdFilter = None,
    status: SyncStatus | None = None,
) -> StatusReport:
    """Every gateway's config status (in_sync, pending, rejected with the gateway's error, …) with counts."""
    report = await ctx.configs.statuses(village_id=village, town_id=town, county_id=county, status=status)
    if actor.scope is None:
        return report
    index = await ctx.places.index()
    return report.within(lambda sync: covers(actor.scope, index.of_gateway(sync.gateway_id)))


@router.get("/config/signing-key")
async def signing_key(ctx: Context, _: Reader) -> SigningKeyPublic:
    """The public half of the fleet's config-signing key: what each gateway's config_signing_key file holds."""
    return SigningKeyPublic(key_id=ctx.configs.signer.key_id, public_key_pem=ctx.configs.signing_public_key())

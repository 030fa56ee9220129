"""Routes for recording gateways in villages and the devices wired to them (technicians)."""

from typing import Any

from fastapi import APIRouter, Response, status

from fleet.api.context import CALLER_RESPONSES, Context, IdPath, Provisioner, Reader, require_place
from fleet.api.schemas import GatewayPublic
from fleet.sites.schemas import DevicePublic, DeviceSpec, GatewayPatch, GatewaySpec

router = APIRouter(tags=["gateways"], responses=CALLER_RESPONSES)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown gateway, village, grid or device"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Exists already, or in the way"}}
_BROKER: dict[int | str, dict[str, Any]] = {
    503: {"description": "The broker did not take the gateway's new login or config: nothing changed, try again"}
}


@router.post("/gateways", status_code=status.HTTP_201_CREATED, responses={**_NOT_FOUND, **_CONFLICT})
async def create_gateway(ctx: Context, actor: Provisioner, spec: GatewaySpec) -> GatewayPublic:
    """Record a gateway in a village before it is installed (it shows as never connected)."""
    require_place(actor, await ctx.places.of_village(spec.village_id), f"village {spec.village_id}")
    return GatewayPublic.of(await ctx.inventory.create_gateway(actor, spec))


@router.patch("/gateways/{gateway_id}", responses={**_NOT_FOUND, **_CONFLICT, **_BROKER})
async def update_gateway(ctx: Context, actor: Provisioner, gateway_id: IdPath, patch: GatewayPatch) -> GatewayPublic:
    """Rename a gateway or move it to another village: its broker login then allows the new village's topics
    only, and its desired config is made for its new place (the one retained at the old village is erased)."""
    if patch.village_id is not None:
        require_place(actor, await ctx.places.of_village(patch.village_id), f"village {patch.village_id}")
    return GatewayPublic.of(await ctx.inventory.update_gateway(actor, gateway_id, patch))


@router.delete(
    "/gateways/{gateway_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, **_CONFLICT, **_BROKER},
)
async def delete_gateway(ctx: Context, actor: Provisioner, gateway_id: IdPath) -> Response:
    """Remove a gateway and its devices, its broker login and its retained desired config; refused while
    alerts it raised are on record."""
    await ctx.inventory.delete_gateway(actor, gateway_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/gateways/{gateway_id}/devices", responses={**_NOT_FOUND})
async def list_devices(ctx: Context, _: Reader, gateway_id: IdPath) -> list[DevicePublic]:
    return [DevicePublic.of(row) for row in await ctx.inventory.devices(gateway_id)]


@router.put("/gateways/{gateway_id}/devices/{device_id}", responses={**_NOT_FOUND, 422: {"description": "Bad grid"}})
async def put_device(
    ctx: Context, actor: Provisioner, gateway_id: IdPath, device_id: IdPath, spec: DeviceSpec
) -> DevicePublic:
    """Record a device on a gateway, or change its kind, name or grid (a grid of the gateway's village)."""
    return DevicePublic.of(await ctx.inventory.put_device(actor, gateway_id, device_id, spec))


@router.delete(
    "/gateways/{gateway_id}/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**_NOT_FOUND}
)
async def delete_device(ctx: Context, actor: Provisioner, gateway_id: IdPath, device_id: IdPath) -> Response:
    await ctx.inventory.delete_device(actor, gateway_id, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

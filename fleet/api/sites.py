"""Routes for the site hierarchy: counties, towns, villages, grids, and bulk import of a site list."""

from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Query, Response, status

from fleet.access.scope import Place, covers
from fleet.api.context import (
    CALLER_RESPONSES,
    Context,
    FleetSiteManager,
    IdPath,
    Reader,
    SiteManager,
    in_scope,
    require_place,
)
from fleet.sites.csv_import import decode_sheet, parse_sites_cooperatively
from fleet.sites.schemas import (
    CountyPatch,
    CountyPublic,
    CountySpec,
    GridPatch,
    GridPublic,
    GridSpec,
    ImportReport,
    TownPatch,
    TownPublic,
    TownSpec,
    VillagePatch,
    VillagePublic,
    VillageSpec,
)
from protocol.identifiers import IDENTIFIER_PATTERN

router = APIRouter(tags=["sites"], responses=CALLER_RESPONSES)

IdFilter = Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown site"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Exists already, or still in use"}}
IMPORT_PATH: Final = "/sites/import"


@router.get("/counties")
async def list_counties(ctx: Context, actor: Reader) -> list[CountyPublic]:
    """The counties (a scoped token: its own, if it is scoped to one)."""
    rows = await ctx.sites.counties()
    return [CountyPublic.of(row) for row in rows if covers(actor.scope, Place(county_id=row.id))]


@router.post("/counties", status_code=status.HTTP_201_CREATED, responses={**_CONFLICT})
async def create_county(ctx: Context, actor: FleetSiteManager, spec: CountySpec) -> CountyPublic:
    return CountyPublic.of(await ctx.sites.create_county(actor, spec))


@router.get("/counties/{county_id}", responses={**_NOT_FOUND})
async def get_county(ctx: Context, _: Reader, county_id: IdPath) -> CountyPublic:
    return CountyPublic.of(await ctx.sites.county(county_id))


@router.patch("/counties/{county_id}", responses={**_NOT_FOUND})
async def update_county(ctx: Context, actor: SiteManager, county_id: IdPath, patch: CountyPatch) -> CountyPublic:
    row = await ctx.sites.update_county(actor, county_id, patch)
    await ctx.rules.changed()  # the villages under it may run by other rules now
    return CountyPublic.of(row)


@router.delete("/counties/{county_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**_NOT_FOUND, **_CONFLICT})
async def delete_county(ctx: Context, actor: FleetSiteManager, county_id: IdPath) -> Response:
    await ctx.sites.delete_county(actor, county_id)
    await ctx.rules.changed()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/towns")
async def list_towns(ctx: Context, actor: Reader, county_id: IdFilter = None) -> list[TownPublic]:
    """The towns (of a county); a scoped token sees those in its scope."""
    rows = await ctx.sites.towns(county_id)
    return [TownPublic.of(row) for row in rows if covers(actor.scope, Place(county_id=row.county_id, town_id=row.id))]


@router.post("/towns", status_code=status.HTTP_201_CREATED, responses={**_NOT_FOUND, **_CONFLICT})
async def create_town(ctx: Context, actor: SiteManager, spec: TownSpec) -> TownPublic:
    require_place(actor, Place(county_id=spec.county_id), f"county {spec.county_id}")
    row = await ctx.sites.create_town(actor, spec)
    await ctx.rules.changed()  # the villages under it may run by other rules now
    return TownPublic.of(row)


@router.get("/towns/{town_id}", responses={**_NOT_FOUND})
async def get_town(ctx: Context, _: Reader, town_id: IdPath) -> TownPublic:
    return TownPublic.of(await ctx.sites.town(town_id))


@router.patch("/towns/{town_id}", responses={**_NOT_FOUND})
async def update_town(ctx: Context, actor: SiteManager, town_id: IdPath, patch: TownPatch) -> TownPublic:
    if patch.county_id is not None:
        require_place(actor, Place(county_id=patch.county_id), f"county {patch.county_id}")
    row = await ctx.sites.update_town(actor, town_id, patch)
    await ctx.rules.changed()  # the villages under it may run by other rules now
    return TownPublic.of(row)


@router.delete("/towns/{town_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**_NOT_FOUND, **_CONFLICT})
async def delete_town(ctx: Context, actor: SiteManager, town_id: IdPath) -> Response:
    await ctx.sites.delete_town(actor, town_id)
    await ctx.rules.changed()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/villages")
async def list_villages(
    ctx: Context,
    actor: Reader,
    town_id: IdFilter = None,
    county_id: IdFilter = None,
    unplaced: Annotated[bool, Query(description="Only villages heard of from gateways and not yet in a town")] = False,
) -> list[VillagePublic]:
    rows = await ctx.sites.villages(town_id=town_id, county_id=county_id, unplaced=unplaced)
    return [VillagePublic.of(row) for row in await in_scope(ctx, actor, rows, lambda at, row: at.of_village(row.id))]


@router.post("/villages", status_code=status.HTTP_201_CREATED, responses={**_NOT_FOUND, **_CONFLICT})
async def create_village(ctx: Context, actor: SiteManager, spec: VillageSpec) -> VillagePublic:
    """Create a village in a town (or place one the fleet heard of from a gateway)."""
    require_place(actor, await ctx.places.of_town(spec.town_id), f"town {spec.town_id}")
    row = await ctx.sites.create_village(actor, spec)
    await ctx.rules.changed()  # the villages under it may run by other rules now
    return VillagePublic.of(row)


@router.get("/villages/{village_id}", responses={**_NOT_FOUND})
async def get_village(ctx: Context, _: Reader, village_id: IdPath) -> VillagePublic:
    return VillagePublic.of(await ctx.sites.village(village_id))


@router.patch("/villages/{village_id}", responses={**_NOT_FOUND, **_CONFLICT})
async def update_village(ctx: Context, actor: SiteManager, village_id: IdPath, patch: VillagePatch) -> VillagePublic:
    if patch.town_id is not None:
        require_place(actor, await ctx.places.of_town(patch.town_id), f"town {patch.town_id}")
    row = await ctx.sites.update_village(actor, village_id, patch)
    await ctx.rules.changed()  # the villages under it may run by other rules now
    return VillagePublic.of(row)


@router.delete("/villages/{village_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**_NOT_FOUND, **_CONFLICT})
async def delete_village(ctx: Context, actor: SiteManager, village_id: IdPath) -> Response:
    await ctx.sites.delete_village(actor, village_id)
    await ctx.rules.changed()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/villages/{village_id}/grids", responses={**_NOT_FOUND})
async def list_grids(ctx: Context, _: Reader, village_id: IdPath) -> list[GridPublic]:
    return [GridPublic.of(row) for row in await ctx.sites.grids(village_id)]


@router.post("/villages/{village_id}/grids", status_code=status.HTTP_201_CREATED, responses={**_NOT_FOUND, **_CONFLICT})
async def create_grid(ctx: Context, actor: SiteManager, village_id: IdPath, spec: GridSpec) -> GridPublic:
    return GridPublic.of(await ctx.sites.create_grid(actor, village_id, spec))


@router.get("/villages/{village_id}/grids/{grid_id}", responses={**_NOT_FOUND})
async def get_grid(ctx: Context, _: Reader, village_id: IdPath, grid_id: IdPath) -> GridPublic:
    return GridPublic.of(await ctx.sites.grid(village_id, grid_id))


@router.patch("/villages/{village_id}/grids/{grid_id}", responses={**_NOT_FOUND})
async def update_grid(
    ctx: Context, actor: SiteManager, village_id: IdPath, grid_id: IdPath, patch: GridPatch
) -> GridPublic:
    return GridPublic.of(await ctx.sites.update_grid(actor, village_id, grid_id, patch))


@router.delete(
    "/villages/{village_id}/grids/{grid_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**_NOT_FOUND}
)
async def delete_grid(ctx: Context, actor: SiteManager, village_id: IdPath, grid_id: IdPath) -> Response:
    await ctx.sites.delete_grid(actor, village_id, grid_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    IMPORT_PATH,
    responses={
        404: {"description": "A parent named in the list does not exist"},
        422: {"description": "Not UTF-8 text, not CSV, or bad rows"},
    },
)
async def import_sites(
    ctx: Context,
    actor: FleetSiteManager,
    sheet: Annotated[
        bytes,
        Body(media_type="text/csv", description="The site list as CSV (UTF-8), at most api.max_import_bytes."),
    ],
    dry_run: Annotated[bool, Query(description="Check the list and report what would change; change nothing")] = False,
) -> ImportReport:
    """Import a site list (county → town → village → grid, one row per grid): on any problem in it, nothing.

    The list is written a few hundred sites per transaction, so alerts arriving meanwhile wait for no more than
    one of them; if writing fails part-way, importing the same list again completes it."""
    text = decode_sheet(sheet)
    report = await ctx.sites.import_sites(actor, await parse_sites_cooperatively(text), dry_run=dry_run)
    await ctx.rules.changed()
    return report

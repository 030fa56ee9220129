"""A small county for config push tests: two towns, three villages, four gateways, and one unplaced village."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor, Role
from fleet.gateways.registry import Registry
from fleet.sites.inventory import GatewayInventory
from fleet.sites.schemas import CountySpec, GatewaySpec, TownSpec, VillageSpec
from fleet.sites.store import SiteStore
from tests.fleet.helpers import FakeClock

ADMIN = Actor("li-wei", Role.ADMIN)
GATEWAYS_OF = {"shiqiao": ["gw-1", "gw-2"], "dongcun": ["gw-3"], "beicun": ["gw-4"], "heard-of": ["gw-5"]}
"""hutou: shiqiao, dongcun; xiping: beicun; both towns in county anxi. heard-of is in no town."""


async def build_county(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    sites = SiteStore(sessions, clock)
    inventory = GatewayInventory(sessions, clock)
    await sites.create_county(ADMIN, CountySpec(id="anxi", name="Anxi"))
    for town in ("hutou", "xiping"):
        await sites.create_town(ADMIN, TownSpec(id=town, county_id="anxi", name=town))
    for village, town in (("shiqiao", "hutou"), ("dongcun", "hutou"), ("beicun", "xiping")):
        await sites.create_village(ADMIN, VillageSpec(id=village, town_id=town, name=village))
        for gateway in GATEWAYS_OF[village]:
            await inventory.create_gateway(ADMIN, GatewaySpec(id=gateway, village_id=village))
    await Registry(sessions, clock).register("heard-of", "gw-5")

"""The county alert tests run in: towns hutou and xiping, with lakeside (gateway gw-01) in the one and
riverside (gw-02) in the other, served through the in-process API."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from fleet.sites.schemas import CountySpec, TownSpec, VillageSpec
from fleet.sites.store import SiteStore
from tests.fleet.api_client import api_context
from tests.fleet.configs.sites import ADMIN
from tests.fleet.helpers import FakeClock

GATEWAY_OF = {"lakeside": "gw-01", "riverside": "gw-02"}


async def alert_county(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    sites = SiteStore(sessions, clock)
    await sites.create_county(ADMIN, CountySpec(id="anxi", name="Anxi"))
    for town, village in (("hutou", "lakeside"), ("xiping", "riverside")):
        await sites.create_town(ADMIN, TownSpec(id=town, county_id="anxi", name=town.title()))
        await sites.create_village(ADMIN, VillageSpec(id=village, town_id=town, name=village.title()))
    context = api_context(sessions, clock)
    for village, gateway in GATEWAY_OF.items():
        await context.registry.register(village, gateway)
    return context

"""Schemathesis drives every operation of the fleet's OpenAPI as callers with less than an unscoped admin's rights:
no token, command staff, and a technician scoped to one town. No server errors, and every refusal is one the
operation documents (401, 403), in its documented shape. Marked ``security``: run by scripts/faults."""

import asyncio
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from fleet.access.roles import Actor, Role
from fleet.access.scope import PlaceKind, PlaceScope
from fleet.access.tokens import TokenStore
from fleet.api.app import create_app
from fleet.db.engine import migrate, session_factory
from fleet.sites.schemas import CountySpec, TownSpec
from fleet.sites.store import SiteStore
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.helpers import FakeClock, database_url

pytestmark = pytest.mark.security

CALLERS: dict[str, str] = {}
"""Bearer secrets by caller, made by the schema fixture (schemathesis parametrizes before fixtures run)."""


@pytest.fixture
def api_schema(tmp_path: Path) -> schemathesis.schemas.BaseSchema:
    engine = create_async_engine(database_url(tmp_path), poolclass=NullPool)
    sessions, clock = session_factory(engine), FakeClock()

    async def prepare() -> None:
        await migrate(engine)
        admin = Actor("bootstrap", Role.ADMIN)
        await SiteStore(sessions, clock).create_county(admin, CountySpec(id="anxi", name="Anxi"))
        await SiteStore(sessions, clock).create_town(admin, TownSpec(id="hutou", county_id="anxi", name="Hutou"))
        tokens = TokenStore(sessions, clock, ADMIN_TOKEN)
        CALLERS["command_staff"] = (await tokens.issue(admin, "staff", Role.COMMAND_STAFF)).secret
        town = PlaceScope(PlaceKind.TOWN, "hutou")
        CALLERS["scoped_technician"] = (await tokens.issue(admin, "tech", Role.TECHNICIAN, scope=town)).secret

    asyncio.run(prepare())
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(api_context(sessions, clock)))


schema = schemathesis.pytest.from_fixture("api_schema")


_FUZZ = hypothesis.settings(max_examples=10, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))


def _call_as(case: schemathesis.Case[Any], caller: str | None) -> None:
    headers = {} if caller is None else {"Authorization": f"Bearer {CALLERS[caller]}"}
    case.call_and_validate(
        headers=headers, checks=[not_a_server_error, response_schema_conformance, status_code_conformance]
    )


@schema.parametrize()
@_FUZZ
def test_without_a_token(case: schemathesis.Case[Any]) -> None:
    _call_as(case, None)


@schema.parametrize()
@_FUZZ
def test_as_command_staff(case: schemathesis.Case[Any]) -> None:
    _call_as(case, "command_staff")


@schema.parametrize()
@_FUZZ
def test_as_a_technician_scoped_to_a_town(case: schemathesis.Case[Any]) -> None:
    _call_as(case, "scoped_technician")

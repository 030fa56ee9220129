"""Schemathesis drives every operation of the fleet's OpenAPI with generated requests as an unscoped admin: no
server errors, and every answer matches the documented schema and status codes. Marked ``security`` (about 35 s):
run by scripts/faults with the fuzzing as lesser callers (test_openapi_fuzz_roles.py)."""

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

from fleet.api.app import create_app
from fleet.db.engine import migrate, session_factory
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.helpers import FakeClock, database_url


@pytest.fixture
def api_schema(tmp_path: Path) -> schemathesis.schemas.BaseSchema:
    # Schemathesis calls the app from its own event loop: connections must not outlive one call.
    engine = create_async_engine(database_url(tmp_path), poolclass=NullPool)
    asyncio.run(migrate(engine))
    app = create_app(api_context(session_factory(engine), FakeClock()))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


pytestmark = pytest.mark.security

schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_no_operation_fails_or_breaks_its_contract(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
    )

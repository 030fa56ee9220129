"""The connector signs every request to the governance platform, and the reference platform, verifying
signatures over real HTTP, takes them: afresh on each attempt, refused with a wrong secret."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.errors import GovernanceSettingsError
from fleet.governance.client import GovernanceClient
from fleet.settings import FleetSettings, GovernanceSettings
from protocol.governance import CaseRequest
from protocol.messages import AlertKind, Severity
from protocol.request_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from simulators.governance.platform import GovernancePlatform

pytestmark = pytest.mark.integration

TOKEN = "platform-token"
SECRET = "shared-signing-secret"


@pytest.fixture
async def platform() -> AsyncIterator[GovernancePlatform]:
    async with GovernancePlatform(token=TOKEN, signing_secrets=[SECRET]) as running:
        yield running


def client_for(platform: GovernancePlatform, *secrets: str) -> GovernanceClient:
    settings = GovernanceSettings(
        url=AnyHttpUrl(platform.url),
        token=SecretStr(TOKEN),
        signing_secrets=[SecretStr(secret) for secret in secrets],
    )
    return GovernanceClient(settings)


def case() -> CaseRequest:
    return CaseRequest(
        alert_id=uuid.uuid4(),
        kind=AlertKind.PANIC,
        severity=Severity.CRITICAL,
        village_id="lakeside",
        gateway_id="gw-01",
        device_id="panic-1",
        raised_at=1_700_000_000_000,
    )


async def test_a_signed_case_is_taken_and_a_retry_is_signed_afresh_not_refused_as_a_replay(
    platform: GovernancePlatform,
) -> None:
    client = client_for(platform, SECRET, "next-secret-not-yet-in-use")
    request = case()
    try:
        first = await client.open_case(request)
        await asyncio.sleep(0.002)  # a retry comes after a backoff, never within the same millisecond
        again = await client.open_case(request)  # the answer was lost: the worker tries again
    finally:
        await client.close()

    assert (first.duplicate, again.duplicate, again.case_id) == (False, True, first.case_id)
    signed = [entry for entry in platform.requests.entries if entry.method == "POST"]
    assert [entry.status for entry in signed] == [201, 200]
    signatures = [dict(entry.headers)[SIGNATURE_HEADER.lower()] for entry in signed]
    assert all(dict(entry.headers).get(TIMESTAMP_HEADER.lower()) for entry in signed)
    assert signatures[0] != signatures[1], "each attempt carries its own timestamp and signature"


async def test_a_wrong_secret_is_a_settings_error_and_opens_no_case(platform: GovernancePlatform) -> None:
    client = client_for(platform, "not-the-shared-secret")
    try:
        with pytest.raises(GovernanceSettingsError, match="401"):
            await client.open_case(case())
    finally:
        await client.close()

    assert platform.ledger.cases == []


def test_production_refuses_the_development_signing_secret() -> None:
    with pytest.raises(ValueError, match=r"governance\.signing_secrets"):
        FleetSettings(environment="production")

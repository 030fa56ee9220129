"""A pooled connection the governance platform closed while it was idle never costs a press a retry delay.

The reference platform is served by uvicorn over real HTTP, behind a proxy that closes a kept-alive connection
exactly as the next request arrives on it: the race a rare press loses against the platform's idle timeout.
The connector sends that request again at once on a new connection, so the delivery attempt succeeds; a request
failing on a connection it had just opened is not repeated (that is the platform failing, not a stale connection).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn
from pydantic import AnyHttpUrl, SecretStr

from fleet.errors import GovernanceUnavailableError
from fleet.governance.client import GovernanceClient
from fleet.settings import GovernanceSettings
from protocol.governance import CaseRequest, CaseStatus
from protocol.messages import AlertKind, Severity
from simulators.governance.platform import GovernancePlatform
from tests.fleet.idle_closing_proxy import Close, IdleClosingProxy, idle_closing_proxy

pytestmark = pytest.mark.integration

TOKEN = "platform-token"
SECRET = "shared-signing-secret"


@pytest.fixture
async def platform() -> AsyncIterator[GovernancePlatform]:
    async with GovernancePlatform(token=TOKEN, signing_secrets=[SECRET]) as running:
        yield running


@pytest.fixture
async def proxy(platform: GovernancePlatform) -> AsyncIterator[IdleClosingProxy]:
    async with idle_closing_proxy(platform.url) as running:
        yield running


def client_through(proxy: IdleClosingProxy, **changes: object) -> GovernanceClient:
    settings = GovernanceSettings.model_validate(
        {"url": AnyHttpUrl(proxy.url), "token": SecretStr(TOKEN), "signing_secrets": [SecretStr(SECRET)], **changes}
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


@pytest.mark.parametrize("close", list(Close))
async def test_a_press_meeting_a_connection_closed_while_idle_opens_its_case_on_the_first_attempt(
    platform: GovernancePlatform, proxy: IdleClosingProxy, close: Close
) -> None:
    client = client_through(proxy)
    try:
        earlier = await client.open_case(case())  # leaves a kept-alive connection in the pool
        proxy.close_when_reused(close)
        press = case()

        receipt = await client.open_case(press)  # one delivery attempt: it must not fail
    finally:
        await client.close()

    assert proxy.closed_on_request == 1  # the race happened: the pooled connection died under the request
    assert proxy.connections == 2  # and the request went again on a new one
    assert receipt.alert_id == press.alert_id
    assert receipt.status is CaseStatus.RECEIVED
    assert not receipt.duplicate
    assert {case.alert_id for case in platform.ledger.cases} == {earlier.alert_id, press.alert_id}
    assert platform.ledger.duplicate_requests == 0


async def test_a_request_failing_on_a_new_connection_is_not_repeated(proxy: IdleClosingProxy) -> None:
    client = client_through(proxy)
    proxy.close_every_request()
    try:
        with pytest.raises(GovernanceUnavailableError, match="unreachable"):
            await client.open_case(case())
    finally:
        await client.close()

    assert (proxy.connections, proxy.closed_on_request) == (1, 1)


async def test_the_pool_lets_go_of_an_idle_connection_before_the_platform_would(proxy: IdleClosingProxy) -> None:
    client = client_through(proxy, keepalive_expiry_s=0.05)
    try:
        await client.open_case(case())
        await client.open_case(case())  # at once: the same connection
        assert proxy.connections == 1
        await asyncio.sleep(0.1)  # idle past the client's expiry
        await client.open_case(case())
    finally:
        await client.close()

    assert proxy.connections == 2


def test_the_default_keep_alive_is_shorter_than_uvicorns(platform: GovernancePlatform) -> None:
    platform_idle_s = uvicorn.Config(app=platform.app).timeout_keep_alive  # what the reference platform runs with

    assert GovernanceSettings().keepalive_expiry_s < platform_idle_s

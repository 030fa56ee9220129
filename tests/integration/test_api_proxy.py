"""The fleet's API behind its shipped nginx configuration, ``deploy/nginx/outpost-fleet.conf``, run as shipped
(but for the listen address, the certificate and key and the fleet's port) by a real nginx terminating TLS with
a throwaway CA, in front of the fleet's API on loopback uvicorn.

Through the proxy, over HTTPS: the health check and a token holder's calls work; a body over 8 MiB is refused
by nginx (413) without reaching the fleet, while one of exactly 8 MiB reaches it; the fleet sees each client's
own address, so one client throttled by the rate limit of refused unauthenticated calls does not throttle
another, and a client cannot pick the address it is counted as; the fleet's redirects point back through the
proxy over https; a streamed response reaches the client as the fleet writes it. Plain HTTP to the TLS port
is refused. And the fleet believes forwarded addresses from loopback only, whatever the environment says.
"""

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet.api.app import create_app
from fleet.api.limits import RequestLimits
from fleet.api.server import HttpServer
from fleet.db.engine import create_engine, migrate, session_factory
from protocol.enrollment import ENROLL_PATH
from simulators.infra.certificates import CertificateFiles, write_certificates
from simulators.infra.nginx import NginxServer
from simulators.infra.ports import LOOPBACK
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.helpers import FakeClock, database_url

pytestmark = pytest.mark.integration

SHIPPED_CONFIG: Final = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "outpost-fleet.conf"
PROXY_BODY_CAP: Final = 8 * 1024 * 1024
"""``client_max_body_size 8m``."""
OTHER_CLIENT: Final = "127.0.0.2"
"""A second client address: all of 127.0.0.0/8 is loopback on Linux."""
LIMITS: Final = RequestLimits(import_bytes=2 * PROXY_BODY_CAP, public_burst=3, public_rate_per_s=1e-6)
"""The fleet's own import cap is raised above the proxy's, so a 413 for 8 MiB + 1 can only be nginx's; the rate
limit's bucket holds 3 refused calls and effectively never refills, so no test depends on how fast it runs."""
ADMIN: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVENTS_PATH: Final = "/test-events"
STREAM_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class Arrival:
    """A request as the fleet's app saw it, after uvicorn applied the forwarded headers it trusts."""

    method: str
    path: str
    client: str
    scheme: str


class _Witness:
    """ASGI middleware, outermost in the fleet's app: notes every request that reaches the fleet."""

    def __init__(self, app: ASGIApp, arrivals: list[Arrival]) -> None:
        self._app = app
        self._arrivals = arrivals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            host = str(client[0]) if client else ""
            self._arrivals.append(Arrival(scope["method"], scope["path"], host, scope["scheme"]))
        await self._app(scope, receive, send)


@dataclass(slots=True)
class Fleet:
    server: HttpServer
    arrivals: list[Arrival] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Lets the stand-in event stream send its second event."""

    def seen(self, path: str) -> list[Arrival]:
        return [arrival for arrival in self.arrivals if arrival.path == path]


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateFiles:
    return write_certificates(tmp_path / "pki")


@pytest.fixture
async def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    """The fleet's API (a real, migrated SQLite database) on loopback uvicorn, as behind the proxy: plain HTTP.

    uvicorn's own default for which peers to believe forwarded headers from reads ``FORWARDED_ALLOW_IPS``; it is
    set here to trust everyone, which the fleet must ignore."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    engine = create_engine(database_url(tmp_path))
    await migrate(engine)
    app = create_app(api_context(session_factory(engine), FakeClock()), LIMITS)
    arrivals: list[Arrival] = []
    app.add_middleware(_Witness, arrivals=arrivals)
    release = asyncio.Event()

    async def events(_request: Request) -> Response:
        """The fleet has no event stream yet: this stands in for one, its second event held back until released."""

        async def stream() -> AsyncIterator[bytes]:
            yield b"data: first\n\n"
            await release.wait()
            yield b"data: second\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    app.add_route(EVENTS_PATH, events)
    server = HttpServer(app, LOOPBACK, 0, "fleet")
    await server.start()
    try:
        yield Fleet(server, arrivals, release)
    finally:
        release.set()
        await server.stop()
        await engine.dispose()


def render(shipped: str, *, port: int, certificates: CertificateFiles, fleet_url: str) -> str:
    """The shipped server block with this test's values for the lines an admin sets: a loopback port, the
    throwaway certificate and key, the fleet's port. Everything else, the server name too, is used as shipped."""
    values = {
        "listen 443 ssl;": f"listen {LOOPBACK}:{port} ssl;",
        "/etc/nginx/tls/fleet.pem": str(certificates.server_cert),
        "/etc/nginx/tls/fleet.key": str(certificates.server_key),
        "server 127.0.0.1:8080;": f"server {fleet_url.removeprefix('http://')};",
    }
    for shipped_value, value in values.items():
        if shipped.count(shipped_value) != 1:
            pytest.fail(f"{SHIPPED_CONFIG} should hold {shipped_value!r} exactly once; update this test with it")
        shipped = shipped.replace(shipped_value, value)
    return shipped


@pytest.fixture
async def proxy(certificates: CertificateFiles, fleet: Fleet) -> AsyncIterator[NginxServer]:
    if not NginxServer.available():
        pytest.fail("nginx is not installed: run scripts/test, which installs it")
    shipped = SHIPPED_CONFIG.read_text(encoding="utf-8")

    def servers(port: int) -> str:
        return render(shipped, port=port, certificates=certificates, fleet_url=fleet.server.url)

    async with NginxServer(servers) as server:
        yield server


def client(
    base_url: str,
    certificates: CertificateFiles,
    *,
    source: str = LOOPBACK,
    token: bool = False,
    tls: ssl.TLSVersion | None = None,
) -> httpx.AsyncClient:
    """A client trusting the test CA, connecting from ``source``, with the admin token if ``token``; ``tls``
    caps the protocol version it offers."""
    trust = ssl.create_default_context(cafile=certificates.ca_cert)
    if tls is not None:
        trust.maximum_version = tls
    transport = httpx.AsyncHTTPTransport(verify=trust, local_address=source)
    return httpx.AsyncClient(base_url=base_url, transport=transport, headers=ADMIN if token else None)


async def test_the_health_check_and_a_token_holder_s_calls_pass_through(
    proxy: NginxServer, fleet: Fleet, certificates: CertificateFiles
) -> None:
    async with client(proxy.url, certificates, token=True) as api, client(proxy.url, certificates) as anyone:
        health = await anyone.get("/healthz")
        created = await api.post("/counties", json={"id": "anxi", "name": "Anxi"})
        listed = await api.get("/counties")
        refused = await anyone.get("/counties")

    assert health.status_code == 200, health.text
    assert health.json()["status"] == "degraded"  # the fleet's own answer: no ingest runs beside this API
    assert created.status_code == 201, created.text
    assert listed.status_code == 200
    assert [county["id"] for county in listed.json()] == ["anxi"]
    assert refused.status_code == 401
    assert {(arrival.client, arrival.scheme) for arrival in fleet.arrivals} == {(LOOPBACK, "https")}


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
async def test_tls_1_2_and_1_3_clients_connect(
    proxy: NginxServer, certificates: CertificateFiles, version: ssl.TLSVersion
) -> None:
    async with client(proxy.url, certificates, tls=version) as anyone:
        health = await anyone.get("/healthz")

    assert health.status_code == 200


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body sent chunked (no Content-Length), as a client that does not announce its size sends it."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


async def test_a_body_over_8_mib_is_refused_by_the_proxy_before_it_reaches_the_fleet(
    proxy: NginxServer, fleet: Fleet, certificates: CertificateFiles
) -> None:
    sheet = {"Content-Type": "text/csv"}
    header = b"county_id\n"
    async with client(proxy.url, certificates, token=True) as api:
        announced = await api.post("/sites/import", content=b"x" * (PROXY_BODY_CAP + 1), headers=sheet)
        chunked = await api.post("/sites/import", content=_chunks(PROXY_BODY_CAP + 1), headers=sheet)
        refused = len(fleet.seen("/sites/import"))
        at_cap = await api.post("/sites/import", content=header + b"y" * (PROXY_BODY_CAP - len(header)), headers=sheet)

    assert (announced.status_code, chunked.status_code) == (413, 413)
    assert announced.headers["Server"].startswith("nginx")
    assert refused == 0, "nothing over the cap reached the fleet"
    assert at_cap.status_code == 422, "exactly 8 MiB reaches the fleet, which reads it and refuses a bad site list"
    assert at_cap.headers["Content-Type"] == "application/json"
    assert len(fleet.seen("/sites/import")) == 1


async def test_the_rate_limit_counts_each_client_behind_the_proxy_on_its_own(
    proxy: NginxServer, fleet: Fleet, certificates: CertificateFiles
) -> None:
    """Refused calls to an unauthenticated route (``POST /enroll`` without a valid body) use up the calling
    client's bucket: behind a proxy that did not pass the client's address, every client would share one."""
    async with (
        client(proxy.url, certificates, source=OTHER_CLIENT) as guesser,
        client(proxy.url, certificates) as neighbour,
    ):
        guesses = [(await guesser.post(ENROLL_PATH, json={})).status_code for _ in range(LIMITS.public_burst)]
        throttled = await guesser.post(ENROLL_PATH, json={})
        disguised = await guesser.post(ENROLL_PATH, json={}, headers={"X-Forwarded-For": "192.0.2.7"})
        other = await neighbour.post(ENROLL_PATH, json={})

    assert guesses == [422] * LIMITS.public_burst
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert disguised.status_code == 429, "the proxy replaces a forwarded address the client sent"
    assert other.status_code == 422, "another client is not throttled"
    assert [arrival.client for arrival in fleet.seen(ENROLL_PATH)] == [OTHER_CLIENT] * 5 + [LOOPBACK]


async def test_the_fleet_s_redirects_point_back_through_the_proxy_over_https(
    proxy: NginxServer, certificates: CertificateFiles
) -> None:
    async with client(proxy.url, certificates, token=True) as api:
        moved = await api.get("/counties/")
        followed = await api.get(moved.headers["Location"])

    assert moved.status_code == 307
    assert moved.headers["Location"] == f"{proxy.url}/counties"
    assert followed.status_code == 200


async def test_a_streamed_response_reaches_the_client_as_the_fleet_writes_it(
    proxy: NginxServer, fleet: Fleet, certificates: CertificateFiles
) -> None:
    """The stand-in event stream sends its second event only once the client has the first: a proxy that
    buffered the response would hold the first until the end, which never comes (the test fails on a timeout)."""
    async with client(proxy.url, certificates) as anyone, anyone.stream("GET", EVENTS_PATH) as response:
        chunks = response.aiter_bytes()
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            first = await anext(chunks)
        fleet.release.set()
        rest = b"".join([chunk async for chunk in chunks])

    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert (first, rest) == (b"data: first\n\n", b"data: second\n\n")


async def test_plain_http_to_the_tls_port_is_refused(proxy: NginxServer, fleet: Fleet) -> None:
    plain = proxy.url.replace("https://", "http://")
    async with httpx.AsyncClient(base_url=plain, headers=ADMIN) as api:
        answer = await api.get("/counties")

    assert answer.status_code == 400
    assert "plain HTTP request was sent to HTTPS port" in answer.text
    assert fleet.arrivals == []


async def test_the_fleet_believes_forwarded_headers_from_loopback_only(
    fleet: Fleet, certificates: CertificateFiles
) -> None:
    """A client reaching the fleet directly from another address cannot claim another address or https, even
    with ``FORWARDED_ALLOW_IPS=*`` in the fleet's environment (the fixture sets it)."""
    forged = {"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https"}
    async with client(fleet.server.url, certificates, source=OTHER_CLIENT) as direct:
        answer = await direct.get("/healthz", headers=forged)

    assert answer.status_code == 200
    assert fleet.arrivals == [Arrival("GET", "/healthz", OTHER_CLIENT, "http")]

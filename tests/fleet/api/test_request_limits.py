"""What anyone may send the fleet's API, over real HTTP (uvicorn on loopback): bodies are capped per route (413),
a body without any token is refused before it is read (401), the unauthenticated routes are rate-limited per
client (429 with Retry-After), and a refusal never echoes the input."""

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fleet.api.limits import RequestGuard, RequestLimits
from protocol.enrollment import ENROLL_PATH
from protocol.governance import CASE_CALLBACK_PATH
from protocol.identifiers import IDENTIFIER_RULE
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.enrollment.test_enrollment_api import enroll_body
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import served_api

LIMITS = RequestLimits(
    body_bytes=64 * 1024, public_body_bytes=4 * 1024, import_bytes=256 * 1024, public_rate_per_s=1.0, public_burst=5
)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def fleet(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AsyncIterator[str]:
    async with served_api(api_context(sessions, clock), LIMITS) as url:
        yield url


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    """A body sent chunked (no Content-Length), as a client that does not announce its size sends it."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


@pytest.mark.parametrize("path", [ENROLL_PATH, CASE_CALLBACK_PATH])
async def test_an_unauthenticated_route_refuses_a_body_over_its_small_cap(fleet: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=fleet) as client:
        announced = await client.post(path, content=b"x" * (LIMITS.public_body_bytes + 1))
        chunked = await client.post(path, content=_chunks(10 * LIMITS.public_body_bytes))

    assert (announced.status_code, chunked.status_code) == (413, 413)


async def test_a_token_holder_s_body_is_capped_and_the_site_import_has_its_own_cap(fleet: str) -> None:
    async with httpx.AsyncClient(base_url=fleet, headers=ADMIN) as client:
        county = await client.post("/counties", content=_chunks(LIMITS.body_bytes + 1))
        sheet = {"Content-Type": "text/csv"}
        over = await client.post("/sites/import", content=b"x" * (LIMITS.import_bytes + 1), headers=sheet)
        within = await client.post("/sites/import", content=b"county_id\n" + b"y" * LIMITS.body_bytes, headers=sheet)

    assert (county.status_code, over.status_code) == (413, 413)
    assert within.status_code == 422, "over the general cap but within the import's: read, and refused as a bad list"


async def test_a_body_without_any_token_is_refused_before_it_is_read(fleet: str) -> None:
    """The request announces 100 MB and sends none of it: the answer comes at once, not after a read."""
    url = urlsplit(fleet)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    started = time.monotonic()
    writer.write(
        b"POST /counties HTTP/1.1\r\nHost: fleet\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()

    assert status.startswith(b"HTTP/1.1 401"), status
    assert time.monotonic() - started < 10


async def test_unauthenticated_calls_are_rate_limited_per_client_with_retry_after(fleet: str) -> None:
    async with httpx.AsyncClient(base_url=fleet) as client:
        answers = [
            await client.post(ENROLL_PATH, json=enroll_body("oet_unknown")) for _ in range(LIMITS.public_burst + 3)
        ]

    codes = [answer.status_code for answer in answers]
    assert codes[: LIMITS.public_burst] == [401] * LIMITS.public_burst, "the burst is served (the token is unknown)"
    assert codes[LIMITS.public_burst :] == [429] * 3
    assert int(answers[-1].headers["Retry-After"]) >= 1


async def test_token_holders_are_not_rate_limited(fleet: str) -> None:
    async with httpx.AsyncClient(base_url=fleet, headers=ADMIN) as client:
        codes = {(await client.get("/counties")).status_code for _ in range(3 * LIMITS.public_burst)}

    assert codes == {200}


async def test_a_refused_body_is_never_echoed(fleet: str) -> None:
    name = "n" * 20_000  # within the body cap, far over the name's length
    async with httpx.AsyncClient(base_url=fleet, headers=ADMIN) as client:
        answer = await client.post("/counties", json={"id": "lishui", "name": name, "extra": name})

    assert answer.status_code == 422
    assert len(answer.content) < 2_000
    assert "nnnnnnnnnn" not in answer.text
    assert {tuple(error["loc"]) for error in answer.json()["detail"]} >= {("body", "name"), ("body", "extra")}


async def test_an_oversized_public_key_is_refused_unread(fleet: str) -> None:
    key = "-----BEGIN PUBLIC KEY-----\n" + "A" * 2_000 + "\n-----END PUBLIC KEY-----\n"
    body = enroll_body("oet_unknown") | {"public_key_pem": key}
    async with httpx.AsyncClient(base_url=fleet) as client:
        answer = await client.post(ENROLL_PATH, json=body)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "public_key_pem"]


async def test_only_refused_calls_count_against_a_client() -> None:
    """The governance platform's signed callbacks and real enrollments are never throttled, however many."""

    async def endpoint(request: Request) -> PlainTextResponse:
        good = await request.body() == b"good"
        return PlainTextResponse("ok" if good else "no", 200 if good else 401)

    guard = RequestGuard(
        Starlette(routes=[Route("/enroll", endpoint, methods=["POST"])]),
        public_paths=["/enroll"],
        import_paths=[],
        limits=RequestLimits(public_rate_per_s=0.001, public_burst=3),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://fleet") as client:
        good = [(await client.post("/enroll", content=b"good")).status_code for _ in range(20)]
        bad = [(await client.post("/enroll", content=b"bad")).status_code for _ in range(4)]
        after = (await client.post("/enroll", content=b"good")).status_code

    assert good == [200] * 20
    assert bad == [401, 401, 401, 429]
    assert after == 429, "once its refusals used up its bucket, the client waits"


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/counties", "application/json"), ("/sites/import", "text/csv"), ("/villages/shiqiao/grids", "application/json")],
)
async def test_an_empty_body_is_refused_saying_what_the_route_takes(fleet: str, path: str, media_type: str) -> None:
    async with httpx.AsyncClient(base_url=fleet, headers=ADMIN) as client:
        bare = await client.post(path)
        typed = await client.post(path, content=b"", headers={"Content-Type": media_type})

    assert (bare.status_code, typed.status_code) == (422, 422)
    route = path.replace("shiqiao", "{village_id}")
    sentence = f"the request body is empty: POST {route} takes {media_type}"
    assert bare.json() == typed.json() == {"detail": [{"loc": ["body"], "msg": sentence, "type": "missing"}]}


async def test_a_bad_id_is_refused_with_the_rule_for_ids(fleet: str) -> None:
    async with httpx.AsyncClient(base_url=fleet, headers=ADMIN) as client:
        in_body = await client.post("/counties", json={"id": "Bad Id!", "name": "Anxi"})
        in_path = await client.get("/gateways/Bad!/config")

    assert (in_body.status_code, in_path.status_code) == (422, 422)
    rule = f"not an id: {IDENTIFIER_RULE}"
    assert in_body.json()["detail"] == [{"loc": ["body", "id"], "msg": rule, "type": "string_pattern_mismatch"}]
    assert in_path.json()["detail"] == [{"loc": ["path", "gateway_id"], "msg": rule, "type": "string_pattern_mismatch"}]

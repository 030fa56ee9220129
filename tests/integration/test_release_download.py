"""A gateway fetches a release from the real fleet API over HTTPS, signing with its own key: through a link that
drops mid-file it resumes where it stopped, it finishes what a killed agent left, and it trusts nothing the release
key did not sign."""

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from edge.errors import UpdateRefusedError, UpdateUnavailableError
from edge.updates.download import DownloadProgress, FleetEndpoint, ReleaseDownload
from fleet.api.app import create_app
from fleet.api.context import ApiContext
from fleet.api.server import HttpServer
from fleet.db.engine import create_engine, migrate, session_factory
from protocol.config_signing import public_key_pem
from protocol.reconnect import Backoff
from protocol.releases import SignedRelease
from protocol.updates import ReleaseKind
from simulators.infra.certificates import CertificateFiles, write_certificates
from tests.fleet.api_client import api_client, api_context
from tests.fleet.helpers import FakeClock, database_url
from tests.fleet.releases.parts import RELEASE_KEY, make_release, release_store
from tests.integration.cutting_proxy import cutting_proxy

WHEEL = "wheels/outpost-1.2.0-py3-none-any.whl"
BIG = 3 * 1024 * 1024


@dataclass(frozen=True)
class Fleet:
    url: str
    certificates: CertificateFiles
    context: ApiContext
    release: SignedRelease
    files: dict[str, bytes]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url(tmp_path))
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def fleet(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> AsyncIterator[Fleet]:
    """The fleet's API over HTTPS with one ready release (a 3 MB file and a small one) and a village to enroll in."""
    context = replace(api_context(sessions, clock), releases=release_store(sessions, clock, tmp_path / "releases"))
    files = {"constraints.txt": b"outpost==1.2.0\n", WHEEL: os.urandom(BIG)}
    release = make_release(tmp_path / "built", files)
    async with api_client(context) as admin:
        for path, body in (
            ("/counties", {"id": "lishui", "name": "Lishui"}),
            ("/towns", {"id": "shuinan", "county_id": "lishui", "name": "Shuinan"}),
            ("/villages", {"id": "shiqiao", "town_id": "shuinan", "name": "Shiqiao"}),
        ):
            assert (await admin.post(path, json=body)).status_code == 201
        assert (await admin.post("/releases", json=release.model_dump(mode="json"))).status_code == 201
        for path, data in files.items():
            assert (await admin.put(f"/releases/agent/1.2.0/files/{path}", content=data)).status_code == 200
    certificates = write_certificates(tmp_path / "tls")
    server = HttpServer(
        create_app(context),
        "127.0.0.1",
        0,
        "test-fleet",
        tls_cert_file=certificates.server_cert,
        tls_key_file=certificates.server_key,
    )
    await server.start()
    try:
        yield Fleet(server.url, certificates, context, release, files)
    finally:
        await server.stop()


async def enroll(fleet: Fleet) -> tuple[str, Ed25519PrivateKey]:
    """A gateway enrolled in village shiqiao: its id and its own key."""
    async with api_client(fleet.context) as admin:
        token = (await admin.post("/enrollment-tokens", json={"village_id": "shiqiao"})).json()["secret"]
    key = Ed25519PrivateKey.generate()
    body: dict[str, object] = {
        "schema_version": 1,
        "token": token,
        "public_key_pem": public_key_pem(key.public_key()),
        "hostname": "pi",
        "agent_version": "0.1.0",
    }
    async with api_client(fleet.context, token=None) as anonymous:
        grant = (await anonymous.post("/enroll", json=body)).json()
    return str(grant["gateway_id"]), key


async def downloader(fleet: Fleet, clock: FakeClock, url: str | None = None, **options: object) -> ReleaseDownload:
    gateway_id, key = await enroll(fleet)
    endpoint = FleetEndpoint(url or fleet.url, gateway_id, key, fleet.certificates.ca_cert)
    backoff = Backoff(base_s=0.01, cap_s=0.05)
    return ReleaseDownload(endpoint, [RELEASE_KEY.public_key()], backoff=backoff, clock_ms=clock, **options)  # type: ignore[arg-type]


def assert_complete(into: Path, fleet: Fleet) -> None:
    assert {path: (into / path).read_bytes() for path in fleet.files} == fleet.files
    assert SignedRelease.read(into) == fleet.release
    assert not list(into.rglob("*.part"))


async def test_a_download_cut_off_again_and_again_resumes_where_it_stopped(
    fleet: Fleet, clock: FakeClock, tmp_path: Path
) -> None:
    async with cutting_proxy(fleet.url, cuts=4, cut_after=700_000) as proxy:
        download = await downloader(fleet, clock, proxy.url)
        seen: list[DownloadProgress] = []
        release = await download.fetch(ReleaseKind.AGENT, "1.2.0", tmp_path / "got", seen.append)
    assert release == fleet.release
    assert_complete(tmp_path / "got", fleet)
    assert proxy.connections >= 5  # four cut off, the last one finished
    # Resumed, not restarted: the server sent the file about once (plus TLS and headers), not once per cut.
    assert proxy.downstream_bytes < BIG * 1.2
    assert seen[-1] == DownloadProgress(2, 2, sum(map(len, fleet.files.values())), release.manifest.total_size)


async def test_what_a_killed_agent_left_is_finished_and_a_corrupt_remainder_fetched_again(
    fleet: Fleet, clock: FakeClock, tmp_path: Path
) -> None:
    into = tmp_path / "got"
    (into / "wheels").mkdir(parents=True)
    (into / f"{WHEEL}.part").write_bytes(fleet.files[WHEEL][: BIG // 2])  # killed half-way
    async with cutting_proxy(fleet.url, cuts=0, cut_after=0) as proxy:
        await (await downloader(fleet, clock, proxy.url)).fetch(ReleaseKind.AGENT, "1.2.0", into)
    assert_complete(into, fleet)
    assert proxy.downstream_bytes < BIG * 0.6  # only the second half travelled

    into = tmp_path / "again"
    (into / "wheels").mkdir(parents=True)
    (into / f"{WHEEL}.part").write_bytes(b"\0" * (BIG // 2))  # not what the fleet has: detected, fetched again
    await (await downloader(fleet, clock)).fetch(ReleaseKind.AGENT, "1.2.0", into)
    assert_complete(into, fleet)


async def test_a_release_by_an_untrusted_key_or_for_a_revoked_gateway_is_refused_before_any_file(
    fleet: Fleet, clock: FakeClock, tmp_path: Path
) -> None:
    gateway_id, key = await enroll(fleet)
    endpoint = FleetEndpoint(fleet.url, gateway_id, key, fleet.certificates.ca_cert)
    stranger = ReleaseDownload(endpoint, [Ed25519PrivateKey.generate().public_key()], clock_ms=clock)
    with pytest.raises(UpdateRefusedError, match="not a trusted release key"):
        await stranger.fetch(ReleaseKind.AGENT, "1.2.0", tmp_path / "untrusted")
    assert not (tmp_path / "untrusted").exists()

    with pytest.raises(UpdateRefusedError, match="404"):
        await ReleaseDownload(endpoint, [RELEASE_KEY.public_key()], clock_ms=clock).fetch(
            ReleaseKind.AGENT, "9.9.9", tmp_path / "missing"
        )
    async with api_client(fleet.context) as admin:
        assert (await admin.post(f"/gateways/{gateway_id}/revoke", json={"reason": "stolen"})).status_code == 200
    with pytest.raises(UpdateRefusedError, match="403"):
        await ReleaseDownload(endpoint, [RELEASE_KEY.public_key()], clock_ms=clock).fetch(
            ReleaseKind.AGENT, "1.2.0", tmp_path / "revoked"
        )


async def test_a_fleet_that_cannot_be_reached_or_trusted_gives_up_saying_why(
    fleet: Fleet, clock: FakeClock, tmp_path: Path
) -> None:
    gateway_id, key = await enroll(fleet)
    nowhere = FleetEndpoint("https://127.0.0.1:1", gateway_id, key, fleet.certificates.ca_cert)
    backoff = Backoff(base_s=0.01, cap_s=0.02)
    quick = ReleaseDownload(nowhere, [RELEASE_KEY.public_key()], backoff=backoff, max_idle_attempts=3, clock_ms=clock)
    with pytest.raises(UpdateUnavailableError, match="no progress in 3 attempts"):
        await quick.fetch(ReleaseKind.AGENT, "1.2.0", tmp_path / "nowhere")

    other_ca = write_certificates(tmp_path / "other-ca").ca_cert
    untrusted = FleetEndpoint(fleet.url, gateway_id, key, other_ca)
    download = ReleaseDownload(
        untrusted, [RELEASE_KEY.public_key()], backoff=backoff, max_idle_attempts=2, clock_ms=clock
    )
    with pytest.raises(UpdateUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        await download.fetch(ReleaseKind.AGENT, "1.2.0", tmp_path / "untrusted-fleet")

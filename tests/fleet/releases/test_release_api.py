"""Releases through the API: registered by their signed manifest, uploaded file by file, each taken only as signed,
and served (with ranges) to readers and to enrolled gateways signing with their own key."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from protocol.config_signing import public_key_pem
from protocol.gateway_requests import authorization
from protocol.releases import SignedRelease
from tests.fleet.api_client import api_client, api_context
from tests.fleet.helpers import FakeClock
from tests.fleet.releases.parts import make_release, release_store

FILES = {"constraints.txt": b"outpost==1.2.0\n", "wheels/outpost-1.2.0-py3-none-any.whl": bytes(range(256)) * 300}


@pytest.fixture
def context(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> ApiContext:
    return replace(api_context(sessions, clock), releases=release_store(sessions, clock, tmp_path / "releases"))


@pytest.fixture
async def admin(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as client:
        yield client


@pytest.fixture
def release(tmp_path: Path) -> SignedRelease:
    return make_release(tmp_path / "built", FILES)


async def upload(admin: httpx.AsyncClient, release: SignedRelease, files: dict[str, bytes] = FILES) -> httpx.Response:
    registered = await admin.post("/releases", json=release.model_dump(mode="json"))
    assert registered.status_code in (200, 201), registered.text
    answer = registered
    for path, data in files.items():
        answer = await admin.put(f"/releases/agent/1.2.0/files/{path}", content=data)
        assert answer.status_code == 200, answer.text
    return answer


async def test_a_release_is_uploading_until_every_file_arrived_as_signed_then_ready(
    admin: httpx.AsyncClient, release: SignedRelease
) -> None:
    first = await admin.post("/releases", json=release.model_dump(mode="json"))
    assert first.status_code == 201
    assert first.json()["state"] == "uploading"
    assert sorted(first.json()["missing"]) == sorted(FILES)
    assert (await admin.get("/releases/agent/1.2.0/files/constraints.txt")).status_code == 404  # not ready yet

    again = await admin.post("/releases", json=release.model_dump(mode="json"))  # an interrupted upload resumes
    assert again.status_code == 200
    half = await admin.put("/releases/agent/1.2.0/files/constraints.txt", content=FILES["constraints.txt"])
    assert half.json()["missing"] == ["wheels/outpost-1.2.0-py3-none-any.whl"]
    done = await admin.put(
        "/releases/agent/1.2.0/files/wheels/outpost-1.2.0-py3-none-any.whl",
        content=FILES["wheels/outpost-1.2.0-py3-none-any.whl"],
    )
    assert done.json()["state"] == "ready"
    assert done.json()["missing"] == []
    listed = (await admin.get("/releases")).json()
    assert [(r["kind"], r["version"], r["state"], r["files"]) for r in listed] == [("agent", "1.2.0", "ready", 2)]
    audit = (await admin.get("/audit", params={"target_type": "release"})).json()
    assert [entry["action"] for entry in audit] == ["release.upload"]


async def test_a_file_that_is_not_the_signed_one_is_refused_and_nothing_of_it_is_kept(
    admin: httpx.AsyncClient, release: SignedRelease, context: ApiContext
) -> None:
    await admin.post("/releases", json=release.model_dump(mode="json"))
    path = "wheels/outpost-1.2.0-py3-none-any.whl"
    altered = bytearray(FILES[path])
    altered[100] ^= 1
    wrong = await admin.put(f"/releases/agent/1.2.0/files/{path}", content=bytes(altered))
    longer = await admin.put(f"/releases/agent/1.2.0/files/{path}", content=FILES[path] + b"x")
    shorter = await admin.put(f"/releases/agent/1.2.0/files/{path}", content=FILES[path][:-1])
    unlisted = await admin.put("/releases/agent/1.2.0/files/wheels/evil.whl", content=b"x")
    escape = await admin.put("/releases/agent/1.2.0/files/../../etc/passwd", content=b"x")
    assert [r.status_code for r in (wrong, longer, shorter, unlisted)] == [422, 422, 422, 404]
    assert escape.status_code in (404, 422)
    assert "not the file the release manifest signs" in wrong.json()["detail"]
    assert "larger than" in longer.json()["detail"]
    state = (await admin.get("/releases/agent/1.2.0")).json()
    assert state["state"] == "uploading"
    assert path in state["missing"]
    files = context.releases.files
    assert not files.path_of("agent", "1.2.0", path).exists()
    assert list((files.directory / ".incoming").iterdir()) == []


async def test_a_release_not_signed_by_a_trusted_key_or_altered_after_signing_is_refused(
    admin: httpx.AsyncClient, tmp_path: Path, release: SignedRelease
) -> None:
    stranger = make_release(tmp_path / "other", FILES, key=Ed25519PrivateKey.generate())
    refused = await admin.post("/releases", json=stranger.model_dump(mode="json"))
    assert refused.status_code == 422
    assert "not a trusted release key" in refused.json()["detail"]
    tampered = release.model_copy(update={"manifest": release.manifest.model_copy(update={"version": "9.9.9"})})
    altered = await admin.post("/releases", json=tampered.model_dump(mode="json"))
    assert altered.status_code == 422
    assert "altered after signing" in altered.json()["detail"]
    assert (await admin.get("/releases")).json() == []


async def test_another_manifest_under_a_stored_version_is_a_conflict(
    admin: httpx.AsyncClient, tmp_path: Path, release: SignedRelease
) -> None:
    await admin.post("/releases", json=release.model_dump(mode="json"))
    other = make_release(tmp_path / "other", {"constraints.txt": b"different\n"})
    assert (await admin.post("/releases", json=other.model_dump(mode="json"))).status_code == 409


async def test_only_an_admin_uploads_or_removes_a_release(
    admin: httpx.AsyncClient, context: ApiContext, release: SignedRelease
) -> None:
    staff = (await admin.post("/tokens", json={"name": "desk", "role": "command_staff"})).json()["secret"]
    async with api_client(context, token=staff) as client:
        assert (await client.post("/releases", json=release.model_dump(mode="json"))).status_code == 403
        await upload(admin, release)
        assert (await client.get("/releases")).status_code == 200
        assert (await client.delete("/releases/agent/1.2.0")).status_code == 403
    assert (await admin.delete("/releases/agent/1.2.0")).status_code == 204
    assert (await admin.get("/releases/agent/1.2.0")).status_code == 404
    assert not context.releases.files.release_dir("agent", "1.2.0").exists()


async def test_a_reader_downloads_a_ready_release_and_resumes_with_a_range(
    admin: httpx.AsyncClient, release: SignedRelease
) -> None:
    await upload(admin, release)
    manifest = await admin.get("/releases/agent/1.2.0/release.json")
    assert SignedRelease.parse(manifest.content) == release
    path = "wheels/outpost-1.2.0-py3-none-any.whl"
    whole = FILES[path]
    head = await admin.get(f"/releases/agent/1.2.0/files/{path}", headers={"Range": "bytes=0-999"})
    tail = await admin.get(f"/releases/agent/1.2.0/files/{path}", headers={"Range": "bytes=1000-"})
    assert (head.status_code, tail.status_code) == (206, 206)
    assert head.content + tail.content == whole
    assert tail.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert hashlib.sha256(head.content + tail.content).hexdigest() == release.manifest.files[1].sha256


async def enrolled_gateway(admin: httpx.AsyncClient, context: ApiContext) -> tuple[str, Ed25519PrivateKey]:
    for path, body in (
        ("/counties", {"id": "lishui", "name": "Lishui"}),
        ("/towns", {"id": "shuinan", "county_id": "lishui", "name": "Shuinan"}),
        ("/villages", {"id": "shiqiao", "town_id": "shuinan", "name": "Shiqiao"}),
    ):
        assert (await admin.post(path, json=body)).status_code == 201
    token = (await admin.post("/enrollment-tokens", json={"village_id": "shiqiao"})).json()["secret"]
    key = Ed25519PrivateKey.generate()
    enroll: dict[str, object] = {
        "schema_version": 1,
        "token": token,
        "public_key_pem": public_key_pem(key.public_key()),
        "hostname": "pi",
        "agent_version": "0.1.0",
    }
    async with api_client(context, token=None) as anonymous:
        grant = (await anonymous.post("/enroll", json=enroll)).json()
    return str(grant["gateway_id"]), key


async def test_an_enrolled_gateway_downloads_with_its_own_signature_and_nobody_else_does(
    admin: httpx.AsyncClient, context: ApiContext, release: SignedRelease, clock: FakeClock
) -> None:
    await upload(admin, release)
    gateway_id, key = await enrolled_gateway(admin, context)
    target = "/releases/agent/1.2.0/files/constraints.txt"

    def signed(private: Ed25519PrivateKey, at_ms: int, path: str = target, who: str = gateway_id) -> dict[str, str]:
        return {"Authorization": authorization(private, who, "GET", path, at_ms)}

    async with api_client(context, token=None) as gateway:
        good = await gateway.get(target, headers=signed(key, clock.now_ms))
        assert (good.status_code, good.content) == (200, FILES["constraints.txt"])
        other_key = await gateway.get(target, headers=signed(Ed25519PrivateKey.generate(), clock.now_ms))
        other_path = await gateway.get(
            "/releases/agent/1.2.0/release.json", headers=signed(key, clock.now_ms, path=target)
        )
        stale = await gateway.get(target, headers=signed(key, clock.now_ms - 600_000))
        unknown = await gateway.get(target, headers=signed(key, clock.now_ms, who="gw-nobody"))
        garbage = await gateway.get(target, headers={"Authorization": "Outpost-Gateway nonsense"})
        nothing = await gateway.get(target)
        assert [r.status_code for r in (other_key, other_path, stale, unknown, garbage, nothing)] == [401] * 6
        assert "clock" in stale.json()["detail"]

        assert (await admin.post(f"/gateways/{gateway_id}/revoke", json={"reason": "stolen"})).status_code == 200
        revoked = await gateway.get(target, headers=signed(key, clock.now_ms))
        assert revoked.status_code == 403


async def test_two_manifests_registered_at_once_under_one_version_leave_one_release_whole(
    admin: httpx.AsyncClient, tmp_path: Path, context: ApiContext
) -> None:
    first = make_release(tmp_path / "a", FILES)
    second = make_release(tmp_path / "b", {"constraints.txt": b"different\n"})

    answers = await asyncio.gather(
        *(admin.post("/releases", json=release.model_dump(mode="json")) for release in (first, second))
    )

    assert sorted(answer.status_code for answer in answers) == [201, 409]
    winner = first if answers[0].status_code == 201 else second
    on_disk = (context.releases.files.release_dir("agent", "1.2.0") / "release.json").read_bytes()
    assert SignedRelease.parse(on_disk) == winner

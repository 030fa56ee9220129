"""``outpost fleet releases`` against the fleet's API served over real HTTP: an upload checks every file here first,
sends only what the fleet lacks (so running it again resumes), and ends with the release ready and served as
built; releases are listed, shown and deleted (after a yes)."""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from fleet.access.roles import Actor
from fleet.cli.app import app
from fleet.releases.files import ReleaseFiles
from fleet.releases.store import ReleaseStore, StoredRelease
from protocol.config_signing import key_id
from protocol.releases import RELEASE_FILE, SignedRelease
from protocol.updates import ReleaseKind
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.cli.busy_county import outpost_fleet
from tests.fleet.helpers import FakeClock
from tests.fleet.releases.parts import RELEASE_KEY, make_release
from tests.fleet.served_api import served_api

WHEEL = "wheels/outpost-1.2.0-py3-none-any.whl"
TORCH = "wheels/torch-2.1.0+cpu-cp311-cp311-linux_aarch64.whl"
FILES = {
    "constraints.txt": b"outpost==1.2.0\ntorch==2.1.0+cpu\n",
    WHEEL: bytes(range(256)) * 300,
    TORCH: bytes(range(255, -1, -1)) * 5000,  # larger than httpx's chunks: it goes in many
}


class WatchedReleases(ReleaseStore):
    """The fleet's release store, noting each release registered and each file it is sent."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: FakeClock, directory: Path) -> None:
        super().__init__(sessions, clock, ReleaseFiles(directory), [RELEASE_KEY.public_key()], max_file_bytes=64 << 20)
        self.registered: list[str] = []
        self.received: list[str] = []

    async def register(self, actor: Actor, release: SignedRelease) -> tuple[StoredRelease, bool]:
        self.registered.append(f"{release.manifest.kind} {release.manifest.version}")
        return await super().register(actor, release)

    async def receive(self, kind: ReleaseKind, version: str, path: str, chunks: AsyncIterator[bytes]) -> StoredRelease:
        self.received.append(path)
        return await super().receive(kind, version, path, chunks)


@pytest.fixture
def store(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> WatchedReleases:
    return WatchedReleases(sessions, clock, tmp_path / "releases")


@pytest.fixture
async def fleet(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, store: WatchedReleases
) -> AsyncIterator[str]:
    async with served_api(replace(api_context(sessions, clock), releases=store)) as url:
        yield url


@pytest.fixture
async def api(fleet: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def built(
    directory: Path,
    files: dict[str, bytes] = FILES,
    *,
    version: str = "1.2.0",
    kind: ReleaseKind = ReleaseKind.AGENT,
    key: Ed25519PrivateKey = RELEASE_KEY,
) -> SignedRelease:
    """A release directory as `outpost release build` leaves it: the files and release.json."""
    release = make_release(directory, files, version=version, kind=kind, key=key)
    (directory / RELEASE_FILE).write_bytes(release.dump())
    return release


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    built(tmp_path / "build")
    return tmp_path / "build"


async def answering(fleet: str, answer: str, *args: str) -> Result:
    """``outpost fleet ARGS`` with ``answer`` typed at its question (empty: stdin closed, as in a script)."""
    env = {"OUTPOST_FLEET_URL": fleet, "OUTPOST_TOKEN": ADMIN_TOKEN}
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), input=answer, env=env, catch_exceptions=False)


async def test_a_fresh_release_is_uploaded_whole_ready_and_served_as_built(
    fleet: str, api: httpx.AsyncClient, store: WatchedReleases, release_dir: Path
) -> None:
    uploaded = await outpost_fleet(fleet, "releases", "upload", str(release_dir))

    assert uploaded.exit_code == 0, uploaded.output
    assert uploaded.stdout == f"agent release 1.2.0: ready, 3 files, {sum(map(len, FILES.values())) / 1e6:.1f} MB\n"
    assert "checking 3 files" in uploaded.stderr
    for number, path in enumerate(sorted(FILES), start=1):
        assert f"[{number}/3] sending {path} (" in uploaded.stderr
    assert store.registered == ["agent 1.2.0"]
    assert sorted(store.received) == sorted(FILES)
    for path, data in FILES.items():
        served = await api.get(f"/releases/agent/1.2.0/files/{path}")
        assert (served.status_code, served.content) == (200, data), path
    manifest = await api.get(f"/releases/agent/1.2.0/{RELEASE_FILE}")
    assert SignedRelease.parse(manifest.content) == SignedRelease.read(release_dir)


@pytest.mark.parametrize("sent_before", [[], ["constraints.txt"], ["constraints.txt", TORCH]])
async def test_an_interrupted_upload_is_resumed_sending_only_what_the_fleet_lacks(
    fleet: str, api: httpx.AsyncClient, store: WatchedReleases, release_dir: Path, sent_before: list[str]
) -> None:
    release = SignedRelease.read(release_dir)
    assert (await api.post("/releases", json=release.model_dump(mode="json"))).status_code == 201
    for path in sent_before:
        assert (await api.put(f"/releases/agent/1.2.0/files/{path}", content=FILES[path])).status_code == 200
    store.received.clear()

    resumed = await outpost_fleet(fleet, "releases", "upload", str(release_dir), "--json")

    assert resumed.exit_code == 0, resumed.output
    lacking = sorted(set(FILES) - set(sent_before))
    assert sorted(store.received) == lacking
    assert json.loads(resumed.stdout) == (await api.get("/releases/agent/1.2.0")).json()
    assert json.loads(resumed.stdout)["state"] == "ready"
    if sent_before:
        assert f"{len(sent_before)} of 3 files on the fleet already, resuming" in resumed.stderr
    assert ("sent 1 file (" if len(lacking) == 1 else f"sent {len(lacking)} files (") in resumed.stderr
    for path in sent_before:
        assert f"sending {path}" not in resumed.stderr

    again = await outpost_fleet(fleet, "releases", "upload", str(release_dir))
    assert again.exit_code == 0, again.output
    assert "agent release 1.2.0 is on the fleet already: nothing to send" in again.stderr
    assert sorted(store.received) == lacking, "nothing sent the second time"


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda d: (d / WHEEL).write_bytes(b"X" + FILES[WHEEL][1:]), f"{WHEEL} does not match the release manifest"),
        (lambda d: (d / TORCH).write_bytes(FILES[TORCH] + b"!"), f"{TORCH} is larger than"),
        (lambda d: (d / "constraints.txt").unlink(), "constraints.txt: No such file or directory"),
        (lambda d: (d / RELEASE_FILE).unlink(), "cannot read release.json"),
        (lambda d: (d / RELEASE_FILE).write_text("{}"), "is not a release manifest"),
    ],
    ids=["altered", "longer", "missing", "no release.json", "no manifest"],
)
async def test_a_release_that_does_not_match_its_manifest_here_is_refused_before_anything_is_sent(
    fleet: str,
    api: httpx.AsyncClient,
    store: WatchedReleases,
    release_dir: Path,
    spoil: Callable[[Path], object],
    said: str,
) -> None:
    spoil(release_dir)

    refused = await outpost_fleet(fleet, "releases", "upload", str(release_dir))

    assert refused.exit_code == 2
    assert refused.stdout == ""
    [line] = [line for line in refused.stderr.splitlines() if not line.startswith("checking ")]
    assert line.startswith("nothing uploaded: ")
    assert said in line
    assert (store.registered, store.received) == ([], [])
    assert (await api.get("/releases")).json() == []


async def test_a_release_signed_by_a_key_the_fleet_does_not_trust_is_refused_naming_the_key(
    fleet: str, api: httpx.AsyncClient, store: WatchedReleases, tmp_path: Path
) -> None:
    stranger = Ed25519PrivateKey.generate()
    built(tmp_path / "stranger", key=stranger)

    refused = await outpost_fleet(fleet, "releases", "upload", str(tmp_path / "stranger"))

    assert refused.exit_code == 1
    [line] = [line for line in refused.stderr.splitlines() if not line.startswith("checking ")]
    assert line.startswith("refused (422): release agent 1.2.0 is signed by key ")
    assert key_id(stranger.public_key()) in line
    assert "not a trusted release key" in line
    assert store.received == []
    assert (await api.get("/releases")).json() == []


async def test_only_an_admin_uploads_a_release(fleet: str, api: httpx.AsyncClient, release_dir: Path) -> None:
    created = await api.post("/tokens", json={"name": "li-tech", "role": "technician"})
    technician = created.json()["secret"]

    refused = await outpost_fleet(fleet, "releases", "upload", str(release_dir), token=technician)
    listed = await outpost_fleet(fleet, "releases", "list", token=technician)

    assert refused.exit_code == 1
    assert "refused (403)" in refused.stderr
    assert listed.exit_code == 0
    assert (await api.get("/releases")).json() == []


@pytest.fixture
async def two_releases(fleet: str, api: httpx.AsyncClient, release_dir: Path, tmp_path: Path) -> None:
    """The agent 1.2.0 uploaded whole; firmware 0.3.0 registered, none of its files sent."""
    assert (await outpost_fleet(fleet, "releases", "upload", str(release_dir))).exit_code == 0
    firmware = built(tmp_path / "node", {"main.py": b"print('hi')\n", "lib/radio.mpy": b"\x4d\x06"}, version="0.3.0",
                     kind=ReleaseKind.FIRMWARE)  # fmt: skip
    assert (await api.post("/releases", json=firmware.model_dump(mode="json"))).status_code == 201


def rows_of(result: Result) -> list[list[str]]:
    """The table's cells, split on its column gaps (two spaces or more)."""
    assert result.exit_code == 0, result.output
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in result.stdout.splitlines()]


@pytest.mark.usefixtures("two_releases")
async def test_releases_are_listed_and_shown_as_a_table_or_as_the_fleet_answered(
    fleet: str, api: httpx.AsyncClient
) -> None:
    header, *rows = rows_of(await outpost_fleet(fleet, "releases", "list"))
    firmware = rows_of(await outpost_fleet(fleet, "releases", "list", "--kind", "firmware"))
    listed = await outpost_fleet(fleet, "releases", "list", "--json")
    only_agents = await outpost_fleet(fleet, "releases", "list", "--kind", "agent", "--json")
    shown = await outpost_fleet(fleet, "releases", "show", "firmware", "0.3.0", "--tz", "UTC")
    as_json = await outpost_fleet(fleet, "releases", "show", "agent", "1.2.0", "--json")
    unknown = await outpost_fleet(fleet, "releases", "show", "agent", "9.9.9")

    assert header[:5] == ["KIND", "VERSION", "STATE", "FILES", "SIZE"]
    assert [row[:4] for row in rows] == [["agent", "1.2.0", "ready", "3"], ["firmware", "0.3.0", "uploading", "2"]]
    assert [row[:3] for row in firmware[1:]] == [["firmware", "0.3.0", "uploading"]]
    assert json.loads(listed.stdout) == (await api.get("/releases")).json()
    assert json.loads(only_agents.stdout) == (await api.get("/releases", params={"kind": "agent"})).json()
    assert [row["version"] for row in json.loads(only_agents.stdout)] == ["1.2.0"]
    assert json.loads(as_json.stdout) == (await api.get("/releases/agent/1.2.0")).json()
    assert shown.exit_code == 0, shown.output
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.stdout.splitlines())
    assert lines["release"] == "firmware 0.3.0"
    assert lines["state"] == "uploading (2 of 2 files missing)"
    assert lines["missing"] == "lib/radio.mpy, main.py"
    assert lines["uploaded"] == "2023-11-14 22:13:20 UTC by bootstrap-admin"
    assert key_id(RELEASE_KEY.public_key()) in lines["signed by"]
    assert (unknown.exit_code, unknown.stderr) == (1, "refused (404): no agent release '9.9.9'\n")


async def test_an_empty_fleet_says_it_has_no_releases(fleet: str) -> None:
    nothing = await outpost_fleet(fleet, "releases", "list")
    no_firmware = await outpost_fleet(fleet, "releases", "list", "--kind", "firmware")

    assert (nothing.exit_code, nothing.stdout, nothing.stderr) == (0, "", "no releases\n")
    assert no_firmware.stderr == "no firmware releases\n"


@pytest.mark.usefixtures("two_releases")
async def test_a_release_is_deleted_only_after_a_yes_or_with_yes(fleet: str, api: httpx.AsyncClient) -> None:
    declined = await answering(fleet, "n\n", "releases", "delete", "agent", "1.2.0")
    unanswered = await answering(fleet, "", "releases", "delete", "agent", "1.2.0")
    still_there = (await api.get("/releases/agent/1.2.0")).status_code
    confirmed = await answering(fleet, "y\n", "releases", "delete", "agent", "1.2.0")
    unasked = await answering(fleet, "", "releases", "delete", "firmware", "0.3.0", "--yes")
    again = await outpost_fleet(fleet, "releases", "delete", "agent", "1.2.0", "--yes")

    for kept in (declined, unanswered):
        assert kept.exit_code == 1
        assert "delete agent release 1.2.0 (ready, 3 files, " in kept.stderr
        assert "agent release 1.2.0 not deleted (--yes deletes without asking)" in kept.stderr
        assert "deleted agent" not in kept.stdout  # the runner echoes the answer typed there
    assert still_there == 200
    assert confirmed.exit_code == 0, confirmed.output
    assert confirmed.stdout.endswith("\ndeleted agent release 1.2.0\n")
    assert (unasked.exit_code, unasked.stdout, unasked.stderr) == (0, "deleted firmware release 0.3.0\n", "")
    assert (again.exit_code, again.stderr) == (1, "refused (404): no agent release '1.2.0'\n")
    assert (await api.get("/releases")).json() == []
    audit = (await api.get("/audit", params={"target_type": "release"})).json()
    assert sorted(entry["action"] for entry in audit) == ["release.delete"] * 2 + ["release.upload"] * 2


async def test_a_version_that_is_no_version_is_refused_before_calling_the_fleet(fleet: str) -> None:
    sneaky = await outpost_fleet(fleet, "releases", "delete", "agent", "../../tokens/li-tech", "--yes")
    no_kind = await outpost_fleet(fleet, "releases", "show", "kernel", "1.0")

    assert sneaky.exit_code == 2
    assert "is no release version" in sneaky.output
    assert no_kind.exit_code == 2

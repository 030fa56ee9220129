"""An agent update end to end, with real releases of this checkout, real pip installs into real slots, the real
fleet (its API, commands and releases) on a real Mosquitto, and the agent run as systemd would run it, guard
included (tests/integration/systemd_stand_in.py).

The gateway is installed from release 1.0.0 into ``slots/a`` and enrolled with ``outpost gateway enroll``. Then:
a good release (1.0.1) is installed into ``slots/b``, passes its health gate and stays; a release whose agent never
gets a heartbeat through (1.0.2) fails its gate and the gateway goes back to 1.0.1 by itself, saying why; a
release that dies at every start (1.0.3) is rolled back by the guard after ``max_boots`` starts; and kill -9
during a download and during an install leaves a gateway on its working agent that finishes the update when asked
again. The fleet sees every step in the heartbeats.
"""

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.updates.install import install_release
from edge.updates.slots import SlotLayout
from fleet.settings import DEVELOPMENT_ADMIN_TOKEN, ReleaseSettings
from outpost_cli.release_build import NOT_SOURCE, AgentBuild, build_agent_release
from protocol.config_signing import public_key_pem
from protocol.releases import SignedRelease
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import FleetFactory, eventually
from tests.integration.systemd_stand_in import AgentService

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CHECKOUT: Final = Path(__file__).resolve().parents[2]
KEY: Final = Ed25519PrivateKey.generate()
VILLAGE: Final = "shiqiao"
HEARTBEAT_DELIVERED: Final = "                self.heartbeat_delivered.set()\n"
AGENT_STARTS: Final = "        self._start_devices()  # EdgeConfigError"


@dataclass(frozen=True)
class Releases:
    directories: dict[str, Path]

    def __getitem__(self, version: str) -> Path:
        return self.directories[version]


def _variant(source: Path, into: Path, version: str, breakage: Callable[[str], str] | None) -> Path:
    """A copy of the checkout at ``version``, its agent broken by ``breakage`` (of edge/agent.py's text)."""
    shutil.copytree(source, into, ignore=NOT_SOURCE)
    pyproject = into / "pyproject.toml"
    text = pyproject.read_text()
    assert '\nversion = "' in text
    pyproject.write_text(text.replace(text.split('\nversion = "')[1].split('"')[0], version, 1))
    if breakage is not None:
        agent = into / "edge" / "agent.py"
        broken = breakage(agent.read_text())
        assert broken != agent.read_text(), "the breakage no longer applies to edge/agent.py"
        agent.write_text(broken)
    return into


def _no_heartbeat_gets_through(text: str) -> str:
    return text.replace(HEARTBEAT_DELIVERED, "                pass  # broken on purpose: never delivered\n")


def _dies_at_start(text: str) -> str:
    return text.replace(AGENT_STARTS, '        raise SystemExit("broken on purpose")\n' + AGENT_STARTS)


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    """Agent releases 1.0.0 to 1.0.3 built from this checkout, signed with :data:`KEY`."""
    root = tmp_path_factory.mktemp("releases")
    variants = {
        "1.0.0": None,
        "1.0.1": None,
        "1.0.2": _no_heartbeat_gets_through,
        "1.0.3": _dies_at_start,
    }
    built: dict[str, Path] = {}
    for version, breakage in variants.items():
        source = _variant(CHECKOUT, root / f"source-{version}", version, breakage)
        links = (built["1.0.0"] / "wheels",) if built else ()
        build = AgentBuild(out=root / version, source=source, find_links=links)
        build_agent_release(build, KEY, lambda _line: None)
        built[version] = root / version
    return Releases(built)


@dataclass
class Gateway:
    id: str
    root: Path
    layout: SlotLayout
    service: AgentService


async def _upload(api: httpx.AsyncClient, directory: Path) -> None:
    release = SignedRelease.read(directory)
    registered = await api.post("/releases", json=release.model_dump(mode="json"))
    assert registered.status_code == 201, registered.text
    for file in release.manifest.files:
        sent = await api.put(
            f"/releases/agent/{release.manifest.version}/files/{file.path}",
            content=(directory / file.path).read_bytes(),
        )
        assert sent.status_code == 200, sent.text
    assert sent.json()["state"] == "ready"


async def _enroll(api: httpx.AsyncClient, root: Path, fleet_url: str) -> tuple[str, Path]:
    for path, body in (
        ("/counties", {"id": "lishui", "name": "Lishui"}),
        ("/towns", {"id": "shuinan", "county_id": "lishui", "name": "Shuinan"}),
        ("/villages", {"id": VILLAGE, "town_id": "shuinan", "name": "Shiqiao"}),
    ):
        assert (await api.post(path, json=body)).status_code == 201
    token = (await api.post("/enrollment-tokens", json={"village_id": VILLAGE})).json()["secret"]
    config_dir = root / "etc"
    enroll = await asyncio.create_subprocess_exec(
        str(root / "opt" / "current" / "bin" / "outpost"), "gateway", "enroll", "--fleet", fleet_url,
        "--token", token, "--insecure-http", "--config-dir", str(config_dir), "--state-dir", str(root / "state"),
        "--no-systemd", "--group", "",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await enroll.communicate()
    assert enroll.returncode == 0, output.decode()
    settings = config_dir / "gateway.toml"
    assert "[updates]" in settings.read_text()
    gateway_id = settings.read_text().split('gateway_id = "')[1].split('"')[0]
    return gateway_id, settings


@pytest.fixture
async def gateway(
    start_fleet: FleetFactory, mosquitto: MosquittoBroker, releases: Releases, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    trusted = tmp_path / "release-keys.pem"
    trusted.write_text(public_key_pem(KEY.public_key()))
    service = await start_fleet(
        releases=ReleaseSettings(directory=tmp_path / "fleet-releases", trusted_keys_file=trusted)
    )
    root = tmp_path / "gateway"
    layout = SlotLayout(root / "opt")
    (root / "opt").mkdir(parents=True)
    await install_release(releases["1.0.0"], SignedRelease.read(releases["1.0.0"]).manifest, layout.slot("a"))
    layout.switch("slots/a")
    headers = {"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=service.http.url, headers=headers, timeout=60) as api:
        for version in ("1.0.1", "1.0.2", "1.0.3"):
            await _upload(api, releases[version])
        gateway_id, settings = await _enroll(api, root, service.http.url)
        environment = {
            "OUTPOST_EDGE_BROKER__HOST": mosquitto.host,
            "OUTPOST_EDGE_BROKER__PORT": str(mosquitto.port),
            "OUTPOST_EDGE_UPDATES__ROOT": str(root / "opt"),
            "OUTPOST_EDGE_UPDATES__GATE_S": "20",
            "OUTPOST_EDGE_UPDATES__MAX_BOOTS": "2",
            "OUTPOST_EDGE_CONFIG__HEARTBEAT_INTERVAL_S": "1",
        }
        async with AgentService(layout.root, settings, root / "logs", environment) as agent:
            gateway = Gateway(gateway_id, root, layout, agent)
            await _until(api, gateway, lambda g: g["online"] and g["agent_version"] == "1.0.0", "1.0.0 online")
            yield gateway, api


async def _read(api: httpx.AsyncClient, gateway_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = (await api.get(f"/gateways/{gateway_id}")).json()
    return answer


async def _until(
    api: httpx.AsyncClient, gateway: Gateway, holds: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 120
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        seen = await _read(api, gateway.id)
        return bool(holds(seen))

    try:
        await eventually(check, timeout_s=timeout_s, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the fleet sees {seen}\n{gateway.service.log_tail()}") from None
    return seen


def _update(gateway: dict[str, Any]) -> dict[str, Any]:
    health = gateway.get("health") or {}
    update: dict[str, Any] = health.get("update") or {}
    return update


async def _ask_update(api: httpx.AsyncClient, gateway: Gateway, version: str, job: str) -> None:
    body = {"name": "update_agent", "args": {"version": version, "job_id": job}, "timeout_s": 60, "wait": True}
    answer = await api.post(f"/gateways/{gateway.id}/commands", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "succeeded", answer.json()


async def test_a_good_update_stays_a_bad_one_rolls_back_by_itself_and_one_that_cannot_start_is_rolled_back(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gw, api = gateway

    await _ask_update(api, gw, "1.0.1", "job-good")
    seen = await _until(
        api, gw, lambda g: g["agent_version"] == "1.0.1" and _update(g).get("state") == "succeeded", "1.0.1 kept"
    )
    assert _update(seen)["job_id"] == "job-good"
    assert gw.layout.target() == "slots/b"
    assert not (gw.layout.root / "trial.env").exists()

    await _ask_update(api, gw, "1.0.2", "job-bad")
    seen = await _until(
        api,
        gw,
        lambda g: g["agent_version"] == "1.0.1" and _update(g).get("state") == "rolled_back",
        "1.0.2 rolled back",
    )
    assert _update(seen)["version"] == "1.0.2"
    assert "no heartbeat reached the broker" in _update(seen)["reason"]
    assert gw.layout.target() == "slots/b"  # back on 1.0.1

    starts = gw.service.starts
    await _ask_update(api, gw, "1.0.3", "job-crash")
    seen = await _until(
        api,
        gw,
        lambda g: (
            g["agent_version"] == "1.0.1"
            and _update(g).get("state") == "rolled_back"
            and _update(g).get("version") == "1.0.3"
        ),
        "1.0.3 rolled back by the guard",
    )
    assert "did not pass its health gate in 2 starts" in _update(seen)["reason"]
    assert gw.layout.target() == "slots/b"
    assert gw.service.starts - starts == 3  # into 1.0.3 twice (both died), then back into 1.0.1


async def _appears(path: Path, what: str) -> None:
    async def there() -> bool:
        return await asyncio.to_thread(path.exists)

    await eventually(there, timeout_s=60, what=what)


async def test_kill_9_during_the_download_and_during_the_install_leaves_the_working_agent_and_the_update_completes(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gw, api = gateway
    downloads = gw.root / "state" / "releases" / "1.0.1"

    await _ask_update(api, gw, "1.0.1", "job-1")
    await _appears(downloads / "release.json", "the download under way")
    gw.service.kill()
    await _until(api, gw, lambda g: g["online"] and g["agent_version"] == "1.0.0", "1.0.0 back after kill -9")
    assert gw.layout.target() == "slots/a"

    await _ask_update(api, gw, "1.0.1", "job-1")  # again, as a job does for a gateway that did not finish
    await _appears(gw.layout.slot("b") / "bin" / "python", "the install under way")
    gw.service.kill()
    await _until(api, gw, lambda g: g["online"] and g["agent_version"] == "1.0.0", "1.0.0 back after kill -9")
    assert gw.layout.target() == "slots/a"

    await _ask_update(api, gw, "1.0.1", "job-1")
    seen = await _until(
        api, gw, lambda g: g["agent_version"] == "1.0.1" and _update(g).get("state") == "succeeded", "1.0.1 kept"
    )
    assert gw.layout.target() == "slots/b"
    assert _update(seen)["job_id"] == "job-1"

"""Presence at the scale of a county: how fast the fleet notices gateways that went away.

Set-up (:class:`~bench.fleet_rig.GatewayFleetRig`): ``outpost fleet run`` with its production
settings (presence sweep every 0.25 s, registry flush every second, health points into a real
VictoriaMetrics), a real Mosquitto, and :attr:`PresenceSizes.gateways` simulated gateways
(:mod:`bench.fleet_gateways`), each on its own MQTT connection with its own retained Last Will, each
heartbeating every :attr:`PresenceSizes.interval_s` at its own phase. The figures are taken once the
fleet counts every gateway online and has caught up with their traffic (registering 2,000 gateways on
first contact, a transaction each, leaves a backlog), and one more interval has passed.

``fleet.presence_offline_p50_s`` and ``fleet.presence_offline_p99_s`` (s): every tenth gateway stops
heartbeating silently (connection kept, no goodbye: a frozen agent or a half-open link). Each one's
delay runs from the moment it published its last heartbeat until the instant the fleet recorded it
offline for ``heartbeat_timeout`` (``presence_changed_ms`` in ``GET /gateways``; both are this
machine's wall clock). The floor is the heartbeat timeout, ``missed_heartbeats * interval``; on top
come the last heartbeat's way through the broker and the fleet, and up to one presence sweep. Goal:
at most the heartbeat timeout + 1 s, for p50 and p99 (nearest rank) over that subset.

``fleet.presence_last_will_p50_ms`` and ``fleet.presence_last_will_p99_ms`` (ms): the process
holding :attr:`PresenceSizes.will_gateways` gateways is killed, so their connections close without a
DISCONNECT and Mosquitto publishes their Last Wills; each delay runs from the kill until the fleet
recorded that gateway offline as ``lost``. No goal was set for it; the heartbeat goal (timeout + 1 s)
is far above.

Before these, with every gateway online, the config fan-out figures are taken (:mod:`bench.fleet_config_fanout`);
the presence figures start once the fleet has every gateway online again and has caught up.

Every other gateway must stay online meanwhile; any that the fleet marked offline is logged as a
warning (it would mean the fleet fell behind its heartbeats).
"""

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from bench.fleet_config_fanout import config_fanout_figures
from bench.fleet_rig import CpuSplit, GatewayFleetRig, GatewayFleetSizes
from bench.harness import Figure, Profile
from bench.percentiles import percentile

logger = logging.getLogger(__name__)

PresenceSizes = GatewayFleetSizes
MISSED_HEARTBEATS: Final = 3
SILENT_EVERY: Final = 10
_HEARTBEAT_TIMEOUT: Final = "heartbeat_timeout"
_LOST: Final = "lost"
_GRACE_S: Final = 5.0


def sizes_for(profile: Profile) -> PresenceSizes:
    """Full: 2,000 gateways heartbeating every 5 s (twice the agent's default rate: 400 heartbeats/s into
    the fleet), 50 of them dropped at once; quick: 200 every second, 10 dropped."""
    if profile.target_s < 0.1:
        return PresenceSizes(gateways=200, interval_s=1.0, missed_heartbeats=MISSED_HEARTBEATS, will_gateways=10)
    return PresenceSizes(gateways=2_000, interval_s=5.0, missed_heartbeats=MISSED_HEARTBEATS, will_gateways=50)


def _delays(rows: dict[str, dict[str, Any]], since_ms: dict[str, int], reason: str, unit_ms: float) -> list[float]:
    """Each gateway's delay from ``since_ms`` until the fleet recorded it offline for ``reason``."""
    wrong = {
        gateway: (row["online"], row["presence_reason"])
        for gateway, row in rows.items()
        if gateway in since_ms and (row["online"] or row["presence_reason"] != reason)
    }
    if wrong:
        sample = dict(list(wrong.items())[:5])
        raise RuntimeError(f"{len(wrong)} gateways not offline for {reason}, e.g. {sample}")
    return [(rows[gateway]["presence_changed_ms"] - since_ms[gateway]) / unit_ms for gateway in since_ms]


async def _wait_until_online(rig: GatewayFleetRig, count: int, deadline: float) -> None:
    """Poll the fleet (it has no push for this) until at most ``count`` gateways are online, or ``deadline``."""
    while time.monotonic() < deadline:
        if await rig.online() <= count:
            return
        await asyncio.sleep(0.25)


async def _measure(profile: Profile) -> tuple[list[Figure], list[float], list[float], PresenceSizes]:
    sizes = sizes_for(profile)
    with tempfile.TemporaryDirectory(prefix="outpost-bench-presence-") as tmp:
        async with GatewayFleetRig(sizes, Path(tmp)) as rig:
            fanout = await config_fanout_figures(rig, profile)
            await rig.all_online(timeout_s=60.0)  # a backlog of config reports delays heartbeats
            cpu = CpuSplit(rig.pids())
            cpu.start()
            await asyncio.sleep(sizes.interval_s)  # every deadline now comes from a steady heartbeat
            logger.info("cores used with every gateway online: %s", cpu.cores())
            others = rig.gateway_ids[sizes.will_gateways :]
            silent = others[::SILENT_EVERY]
            logger.info("ingest lag when the gateways stop: %.3f s", await rig.lag_s())
            last_heartbeat_ms = await rig.silence(silent)
            killed_ms = await rig.drop_will_gateways()
            stays_online = sizes.gateways - len(silent) - sizes.will_gateways
            latest_s = (max(last_heartbeat_ms.values()) - time.time() * 1000) / 1000
            deadline = time.monotonic() + max(0.0, latest_s) + sizes.heartbeat_timeout_s + _GRACE_S
            cpu.start()
            await _wait_until_online(rig, stays_online, deadline)
            logger.info("cores used until they were offline: %s", cpu.cores())
            rows = {row["id"]: row for row in await rig.gateways()}
    silence = _delays(rows, last_heartbeat_ms, _HEARTBEAT_TIMEOUT, 1000.0)
    wills = _delays(rows, dict.fromkeys(rig.will_gateway_ids, killed_ms), _LOST, 1.0)
    wrongly_offline = [
        gateway for gateway in others if gateway not in last_heartbeat_ms and not rows[gateway]["online"]
    ]
    if wrongly_offline:
        logger.warning(
            "%d gateways that kept heartbeating were marked offline, e.g. %s", len(wrongly_offline), wrongly_offline[:5]
        )
    return fanout, silence, wills, sizes


def presence_figures(profile: Profile) -> list[Figure]:
    fanout, silence, wills, sizes = asyncio.run(_measure(profile))
    goal = sizes.heartbeat_timeout_s + 1.0
    logger.info(
        "%d gateways, heartbeat timeout %.1f s: offline after silence %.3f to %.3f s, by Will %.1f to %.1f ms",
        sizes.gateways, sizes.heartbeat_timeout_s, min(silence), max(silence), min(wills), max(wills),
    )  # fmt: skip
    return [
        *fanout,
        Figure.measured(
            "fleet.presence_offline_p50_s", percentile(silence, 0.5), "s", better="lower", runs=len(silence), goal=goal
        ),
        Figure.measured(
            "fleet.presence_offline_p99_s", percentile(silence, 0.99), "s", better="lower", runs=len(silence), goal=goal
        ),
        Figure.measured(
            "fleet.presence_last_will_p50_ms", percentile(wills, 0.5), "ms", better="lower", runs=len(wills)
        ),
        Figure.measured(
            "fleet.presence_last_will_p99_ms", percentile(wills, 0.99), "ms", better="lower", runs=len(wills)
        ),
    ]

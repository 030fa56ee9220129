"""The ``alerts`` benchmark group: press-to-case latency under load, and an alert storm (issue 6).

Everything real, on this machine (:mod:`bench.alerts_rig`): Mosquitto, VictoriaMetrics, ``outpost fleet
run`` with its production settings (``ingest.in_process``: it also takes the telemetry), the reference
governance platform, and :attr:`AlertSizes.gateways` simulated gateways per run, each on its own MQTT
connection with its own Last Will, each sending a 5-point telemetry batch every
:attr:`AlertSizes.telemetry_s` and a heartbeat every :attr:`AlertSizes.heartbeat_s`.

Each run starts a fresh group of gateways (new ids: the previous group's alerts stay open), waits until
the fleet counts them online and has caught up, presses panic buttons in :attr:`AlertSizes.rounds_per_run`
rounds (:mod:`bench.alerts_latency`: ``alerts.press_to_case_p50_ms``/``_p99_ms``, goal 50 ms, against a
bare subscriber on the same broker), then cuts the group's power (:mod:`bench.alerts_storm`:
``alerts.storm_drain_s``, goal 10 s, with the hold-off inside it; ``alerts.storm_alerts_per_s`` against the
fleet's governance client alone). After the last run a tenth of the last group comes back and loses power
again while its alerts are open: correlation must fold each second loss into the open alert.
``alerts.storm_duplicate_cases`` (goal 0) counts any gateway the platform got two cases for, and
``alerts.storm_repeated_requests`` any case asked for again (idempotent retries); a lost case fails the
group. Each figure is the median over the rounds or storms (``runs``).
"""

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.alerts_latency import PressRound, latency_figures, press_round
from bench.alerts_rig import AlertsRig
from bench.alerts_storm import Storm, rejoin_and_cut, storm, storm_figures
from bench.harness import Figure, Profile, register_group

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertSizes:
    gateways: int
    """Per run: a storm's size."""
    heartbeat_s: float
    telemetry_s: float
    presses: int
    """Per round."""
    press_spacing_ms: float
    rounds_per_run: int
    runs: int
    """Runs, each a fresh group of gateways and its storm."""
    warmup_presses: int
    rejoin: int


def sizes_for(profile: Profile) -> AlertSizes:
    """Full: 3 runs of 1,000 gateways (1,000 telemetry batches/s, 200 heartbeats/s), 2 rounds of 100 presses
    each; quick: one run of 100 gateways, 2 rounds of 30 presses. Heartbeats every 5 s (twice the agent's
    default rate), telemetry every second (five times it). A press every 100 ms, the bare one 50 ms after
    it: far more than a county presses, yet spaced so that a press does not wait for the one before it
    unless the fleet takes over 100 ms for one."""
    if profile.target_s < 0.1:
        return AlertSizes(
            gateways=100, heartbeat_s=5.0, telemetry_s=1.0, presses=30, press_spacing_ms=100.0,
            rounds_per_run=2, runs=1, warmup_presses=10, rejoin=10,
        )  # fmt: skip
    return AlertSizes(
        gateways=1_000, heartbeat_s=5.0, telemetry_s=1.0, presses=100, press_spacing_ms=100.0,
        rounds_per_run=2, runs=min(profile.runs, 3), warmup_presses=20, rejoin=100,
    )  # fmt: skip


async def _measure(sizes: AlertSizes) -> tuple[list[PressRound], list[Storm], int]:
    rounds: list[PressRound] = []
    storms: list[Storm] = []
    with tempfile.TemporaryDirectory(prefix="outpost-bench-alerts-") as tmp:
        async with AlertsRig(Path(tmp), heartbeat_s=sizes.heartbeat_s, telemetry_s=sizes.telemetry_s) as rig:
            group = None
            for run in range(sizes.runs):
                group = await rig.start_gateways(run * sizes.gateways, sizes.gateways)
                await asyncio.sleep(2 * sizes.telemetry_s)  # a steady load (each gateway has sent a heartbeat)
                if run == 0:  # the first case opens the platform's connection and warms the fleet's queries
                    await press_round(rig, group, sizes.rounds_per_run, sizes.warmup_presses, sizes.press_spacing_ms)
                for round_ in range(sizes.rounds_per_run):
                    rounds.append(await press_round(rig, group, round_, sizes.presses, sizes.press_spacing_ms))
                storms.append(await storm(rig, group))
            assert group is not None
            rejoin_duplicates = await rejoin_and_cut(rig, group, sizes.rejoin)
    return rounds, storms, rejoin_duplicates


@register_group(
    "alerts",
    "alerting: press-to-case latency p50/p99 with 1,000 gateways sending telemetry (against a bare subscriber), "
    "a power-cut storm of 1,000 gateways offline at once: drain time, alerts/s (against the governance client "
    "alone) and duplicate cases, correlation of gateways lost twice",
)
def alert_figures(profile: Profile) -> list[Figure]:
    rounds, storms, rejoin_duplicates = asyncio.run(_measure(sizes_for(profile)))
    return [*latency_figures(rounds), *storm_figures(storms, rejoin_duplicates)]

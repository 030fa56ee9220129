"""The ``alerts`` benchmark group: press-to-case latency under load and under faults, and an alert storm
(issues 6 and 17).

Everything real, on this machine (:mod:`bench.alerts_rig`): Mosquitto, VictoriaMetrics, ``outpost fleet
run`` with its production settings (``ingest.in_process``: it also takes the telemetry), the reference
governance platform, and :attr:`AlertSizes.gateways` simulated gateways per run, each on its own MQTT
connection with its own Last Will, each sending a 5-point telemetry batch every
:attr:`AlertSizes.telemetry_s` and a heartbeat every :attr:`AlertSizes.heartbeat_s`.

Each run starts a fresh group of gateways (new ids: the previous group's alerts stay open), waits until
the fleet counts them online and has caught up, and then, with the group's load running throughout:

1. presses panic buttons in :attr:`AlertSizes.rounds_per_run` rounds (:mod:`bench.alerts_latency`:
   ``alerts.press_to_case_p50_ms``/``_p99_ms``, goal 25 ms, against a bare subscriber on the same broker);
2. stops the time-series store and presses a round (:mod:`bench.alerts_outage`:
   ``alerts.press_to_case_p99_tsdb_outage_ms``, goal 100 ms, against the rounds of 1.);
3. floods invalid messages from one gateway and presses a round (:mod:`bench.alerts_flood`:
   ``alerts.press_to_case_p99_flood_ms``, goal 100 ms, against the rounds of 1.; the flood's rates);
4. imports a county's site list while pressing (:mod:`bench.alerts_import`:
   ``alerts.press_to_case_max_import_ms``, goal 1,000 ms, against the worst press of 1.; the import's time);
5. cuts the group's power (:mod:`bench.alerts_storm`: ``alerts.storm_drain_s``, goal 5 s, with the hold-off
   inside it; ``alerts.storm_alerts_per_s`` against the fleet's governance client alone).

The fleet catches up after each fault before the next step. After the last run a tenth of the last group
comes back and loses power again while its alerts are open: correlation must fold each second loss into
the open alert. ``alerts.storm_duplicate_cases`` (goal 0) counts any gateway the platform got two cases
for, and ``alerts.storm_repeated_requests`` any case asked for again (idempotent retries); a lost case
fails the group. Each figure is the median over the rounds, faults or storms (``runs``).
"""

import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.alerts_flood import FloodRound, flood_figures, flood_round
from bench.alerts_import import ImportRound, import_figures, import_round
from bench.alerts_latency import PressRound, latency_figures, press_round
from bench.alerts_outage import outage_figure, outage_round
from bench.alerts_rig import AlertsRig, GatewayGroup
from bench.alerts_storm import Storm, rejoin_and_cut, storm, storm_figures
from bench.harness import Figure, Profile, register_group
from bench.site_sheet import county_sheet

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
    outage_lead_s: float
    """How long the time-series store is down before its round of presses starts."""
    flood_lead_s: float
    """How long the flood runs before its round of presses starts."""
    flood_presses: int
    """The flood round's presses (the flood lasts as long as they and ``flood_lead_s``; the fleet needs several
    times that to dead-letter it all afterwards)."""
    import_burst: int
    """Presses per burst during a site import (bursts follow one another until the import answered)."""
    import_towns: int
    import_villages_per_town: int
    import_grids_per_village: int


def sizes_for(profile: Profile) -> AlertSizes:
    """Full: 3 runs of 1,000 gateways (1,000 telemetry batches/s, 200 heartbeats/s), 2 rounds of 100 presses
    each, a round of 100 with the store down 10 s before and during it, 50 during a flood, bursts of 10
    during the import of 1,100 villages (55 towns of 20) of 6 grids each; quick: one run of 100 gateways,
    rounds of 30 presses, the same import. Heartbeats every 5 s (twice the agent's default rate), telemetry
    every second (five times it). A press every 100 ms, the bare one 50 ms after it: far more than a county
    presses, yet spaced so that a press does not wait for the one before it unless the fleet takes over
    100 ms for one."""
    if profile.target_s < 0.1:
        return AlertSizes(
            gateways=100, heartbeat_s=5.0, telemetry_s=1.0, presses=30, press_spacing_ms=100.0,
            rounds_per_run=2, runs=1, warmup_presses=10, rejoin=10, outage_lead_s=5.0, flood_lead_s=1.0,
            flood_presses=30,
            import_burst=10, import_towns=55, import_villages_per_town=20, import_grids_per_village=6,
        )  # fmt: skip
    return AlertSizes(
        gateways=1_000, heartbeat_s=5.0, telemetry_s=1.0, presses=100, press_spacing_ms=100.0,
        rounds_per_run=2, runs=min(profile.runs, 3), warmup_presses=20, rejoin=100, outage_lead_s=10.0,
        flood_lead_s=1.0, flood_presses=50, import_burst=10, import_towns=55, import_villages_per_town=20,
        import_grids_per_village=6,
    )  # fmt: skip


@dataclass(slots=True)
class Measured:
    rounds: list[PressRound] = field(default_factory=list)
    outages: list[PressRound] = field(default_factory=list)
    floods: list[FloodRound] = field(default_factory=list)
    imports: list[ImportRound] = field(default_factory=list)
    storms: list[Storm] = field(default_factory=list)
    rejoin_duplicates: int = 0


async def _run(rig: AlertsRig, group: GatewayGroup, run: int, sizes: AlertSizes, measured: Measured) -> None:
    """One run's steps on ``group`` (see the module docstring), up to and including its power cut."""
    presses, spacing = sizes.presses, sizes.press_spacing_ms
    await asyncio.sleep(2 * sizes.telemetry_s)  # a steady load (each gateway has sent a heartbeat)
    if run == 0:  # the first case opens the platform's connection and warms the fleet's queries
        await press_round(rig, group, sizes.warmup_presses, spacing, "warm-up presses")
    for round_ in range(sizes.rounds_per_run):
        measured.rounds.append(await press_round(rig, group, presses, spacing, f"run {run} press round {round_}"))
    measured.outages.append(await outage_round(rig, group, presses, spacing, sizes.outage_lead_s))
    measured.floods.append(await flood_round(rig, group, sizes.flood_presses, spacing, sizes.flood_lead_s))
    sheet = county_sheet(
        f"bench-{run}", towns=sizes.import_towns, villages_per_town=sizes.import_villages_per_town,
        grids_per_village=sizes.import_grids_per_village,
    )  # fmt: skip
    measured.imports.append(await import_round(rig, group, sheet, sizes.import_burst, spacing))
    await rig.caught_up(timeout_s=180.0)
    measured.storms.append(await storm(rig, group))


async def _measure(sizes: AlertSizes) -> Measured:
    measured = Measured()
    with tempfile.TemporaryDirectory(prefix="outpost-bench-alerts-") as tmp:
        async with AlertsRig(Path(tmp), heartbeat_s=sizes.heartbeat_s, telemetry_s=sizes.telemetry_s) as rig:
            group = None
            for run in range(sizes.runs):
                group = await rig.start_gateways(run * sizes.gateways, sizes.gateways)
                await _run(rig, group, run, sizes, measured)
            assert group is not None
            measured.rejoin_duplicates = await rejoin_and_cut(rig, group, sizes.rejoin)
    return measured


@register_group(
    "alerts",
    "alerting: press-to-case latency p50/p99 with 1,000 gateways sending telemetry (against a bare subscriber), "
    "p99 with the time-series store down and during a flood of invalid messages, the worst press during a "
    "1,100-village site import (each against the rounds without the fault), a power-cut storm of 1,000 "
    "gateways offline at once: drain time, alerts/s (against the governance client alone) and duplicate "
    "cases, correlation of gateways lost twice",
)
def alert_figures(profile: Profile) -> list[Figure]:
    measured = asyncio.run(_measure(sizes_for(profile)))
    quiet = measured.rounds
    return [
        *latency_figures(quiet),
        outage_figure(measured.outages, quiet),
        *flood_figures(measured.floods, quiet),
        *import_figures(measured.imports, quiet),
        *storm_figures(measured.storms, measured.rejoin_duplicates),
    ]

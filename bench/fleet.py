"""The ``fleet`` benchmark group: the fleet manager's figures (issue 5).

Ingest throughput through Mosquitto and ingest workers into VictoriaMetrics (:mod:`bench.fleet_ingest`),
and presence at the scale of 2,000 gateways (:mod:`bench.fleet_presence`, which also runs the config
fan-out hook of :mod:`bench.fleet_config_fanout`). Every figure runs real servers and real fleet
processes on this machine; see ``docs/SCALING.md`` for the numbers measured here.
"""

from bench.fleet_ingest import ingest_figures
from bench.fleet_presence import presence_figures
from bench.harness import Figure, Profile, register_group


@register_group(
    "fleet",
    "fleet manager: ingest points/s through Mosquitto with 1, 2 and 4 workers into VictoriaMetrics (with the "
    "store's and the broker's ceilings), presence of 2,000 gateways: offline by heartbeat silence and by Last Will, "
    "config push fan-out to the 2,000 (p50/p99 until each reported it applied, against a bare publisher)",
)
def fleet_figures(profile: Profile) -> list[Figure]:
    return [*ingest_figures(profile), *presence_figures(profile)]

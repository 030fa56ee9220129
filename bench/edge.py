"""The ``edge`` benchmark group: the gateway agent's figures (issue 4)."""

from bench.edge_buffer import buffer_figures
from bench.edge_detection import detection_figures
from bench.edge_footprint import footprint_figures
from bench.edge_local_action import local_action_figures
from bench.edge_rtsp import rtsp_figures
from bench.harness import Figure, Profile, register_group


@register_group(
    "edge",
    "gateway: detection frames/s on one core, buffer durable writes, replay to a broker, local action on a "
    "panic press with the fleet unreachable, counting and freeze detection over a real RTSP server, RSS and "
    "CPU with two RTSP cameras",
)
def edge_figures(profile: Profile) -> list[Figure]:
    return [
        *detection_figures(profile),
        *buffer_figures(profile),
        *local_action_figures(profile),
        *rtsp_figures(profile),
        *footprint_figures(profile),
    ]

"""Config layers: part of a gateway config set for a county, a town, a village or one gateway.

A layer holds only the keys it sets (a partial :class:`~protocol.gateway_config.GatewayConfig` as JSON); it is
checked on its own when written and resolved by the one layering mechanism (:mod:`fleet.layers`). Whether it
fits with the other layers of every gateway it reaches is checked by :mod:`fleet.configs.desired`.
"""

from typing import Final

from fleet.layers.document import LayeredModel
from fleet.layers.scope import Scope
from protocol.camera_sources import camera_source_problem
from protocol.gateway_config import DriverKind, GatewayConfig

MAX_LAYER_BYTES: Final = 128 * 1024
"""A layer larger than this could never fit the gateway's message limit (64 KiB) anyway."""
MAX_DEPTH: Final = 12
"""GatewayConfig nests six levels deep (devices → detection → zones → points); deeper is never valid."""


def _camera_sources(config: GatewayConfig) -> str | None:
    """A camera source the gateway would refuse (not rtsp/http, or a file): said now, to whoever wrote the layer."""
    for device in config.devices:
        source = device.params.get("source") if device.driver is DriverKind.CAMERA else None
        problem = camera_source_problem(source, files=False) if isinstance(source, str) else None
        if problem is not None:
            return f"devices.{device.id}.params.source: {problem}"
    return None


GATEWAY_CONFIG: Final = LayeredModel(
    "config layer",
    GatewayConfig,
    scopes=(Scope.COUNTY, Scope.TOWN, Scope.VILLAGE, Scope.GATEWAY),
    max_bytes=MAX_LAYER_BYTES,
    max_depth=MAX_DEPTH,
    also_check=_camera_sources,
)
"""Gateway configs as layers: validated as strictly as the gateway's decoder does."""

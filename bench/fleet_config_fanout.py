"""HOOK, not measured yet: config fan-out to every gateway of a :class:`~bench.fleet_rig.GatewayFleetRig`.

The figures the issue asks for are ``fleet.config_fanout_p50_s`` and ``fleet.config_fanout_p99_s``:
the fleet pushes a new signed config to all 2,000 gateways, and each gateway's delay runs from the
push (the API call, or the fleet-side event that starts it) until the fleet holds that gateway's
``config/reported`` ``applied`` for the new version. Goal: :data:`CONFIG_FANOUT_GOAL_S` for both.

The config-push code (``fleet/configs/``) is being written at the same time as this harness, so
:func:`config_fanout_figures` returns no figure yet. To add it:

1. teach :mod:`bench.fleet_gateways` to subscribe each gateway to its own ``config/desired``
   (``protocol.topics.gateway_filters``) and answer a new version with a retained ``ConfigReported``
   (``applied``), noting when the desired config arrived;
2. here, push through the fleet's API (``rig.api``, authorised as the development admin) and read
   the reports back from the fleet (or time them on the gateways' side), then return two
   :class:`~bench.harness.Figure` s with ``goal=CONFIG_FANOUT_GOAL_S``;
3. add their names to ``FIGURES`` in ``tests/bench/test_fleet_group.py``.

It is called while every gateway of the rig is online, before the presence figures stop some of them.
"""

from typing import Final

from bench.fleet_rig import GatewayFleetRig
from bench.harness import Figure, Profile

CONFIG_FANOUT_GOAL_S: Final = 5.0


async def config_fanout_figures(rig: GatewayFleetRig, profile: Profile) -> list[Figure]:
    """No figure until the config push lands (see the module's docstring)."""
    del rig, profile
    return []

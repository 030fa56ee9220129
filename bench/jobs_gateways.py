"""Simulated gateways that take agent updates, for the jobs figures, in a process of their own.

``python -m bench.jobs_gateways HOST PORT COUNT STEP_S INTERVAL_S`` runs gateways ``gw-0000`` … spread over
:data:`bench.fleet_gateways.VILLAGES` villages (:func:`~bench.fleet_gateways.village_id`), each a
:class:`~simulators.updating_gateway.UpdatingGateway` on agent :data:`OLD_VERSION` (its own MQTT connection, the
real protocol; the install simulated, ``STEP_S`` a step). Prints ``{"ready": COUNT}`` once all are online, and
runs until its standard input closes.
"""

import asyncio
import contextlib
import json
import sys
from typing import Final

from bench.fleet_gateways import gateway_id, village_id
from simulators.updating_gateway import UpdatingGateway

OLD_VERSION: Final = "1.0.0"
_CONNECTING_AT_ONCE: Final = 100


async def main(host: str, port: int, count: int, step_s: float, interval_s: float) -> None:
    gateways = [
        UpdatingGateway(
            host, port, village_id(index), gateway_id(index), agent_version=OLD_VERSION, interval_s=interval_s,
            step_s=step_s,
        )
        for index in range(count)
    ]  # fmt: skip
    connecting = asyncio.Semaphore(_CONNECTING_AT_ONCE)

    async def connect(gateway: UpdatingGateway) -> None:
        async with connecting:
            await gateway.__aenter__()

    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(*(connect(gateway) for gateway in gateways))
        for gateway in gateways:
            stack.push_async_exit(gateway.__aexit__)
        sys.stdout.write(json.dumps({"ready": count}) + "\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            pass


if __name__ == "__main__":
    host, port, count, step_s, interval_s = sys.argv[1:6]
    asyncio.run(main(host, int(port), int(count), float(step_s), float(interval_s)))

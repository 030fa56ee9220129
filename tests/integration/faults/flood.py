"""A gateway flooding one of its topics with invalid messages through Mosquitto's own client (``mosquitto_pub``)."""

import asyncio
import shutil
from types import TracebackType

import pytest

from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker

_LINES_PER_WRITE = 100


class Flood:
    """``mosquitto_pub -l`` (QoS 1) in its own process, fed invalid JSON lines until the context ends, at
    ``rate_per_s`` (None: as fast as it takes them); :attr:`sent` counts the lines it published."""

    def __init__(
        self,
        broker: MosquittoBroker,
        gateway_id: str,
        channel: Channel,
        *,
        rate_per_s: float | None = None,
        village_id: str = "shiqiao",
    ) -> None:
        self._command = [
            "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-i", gateway_id, "-q", "1", "-l",
            "-t", gateway_topic(village_id, gateway_id, channel),
        ]  # fmt: skip
        self._gateway_id = gateway_id
        self._pause_s = 0.0 if rate_per_s is None else _LINES_PER_WRITE / rate_per_s
        self._process: asyncio.subprocess.Process | None = None
        self._feeder: asyncio.Task[None] | None = None
        self.sent = 0

    async def __aenter__(self) -> "Flood":
        if shutil.which("mosquitto_pub") is None:
            pytest.fail("mosquitto_pub is not installed: run scripts/test, which installs mosquitto-clients")
        self._process = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        self._feeder = asyncio.create_task(self._feed())
        return self

    async def _feed(self) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        while True:
            lines = b"".join(
                b'{"gateway_id": "%s", "seq": %d, "nonsense": true}\n' % (self._gateway_id.encode(), self.sent + i)
                for i in range(_LINES_PER_WRITE)
            )
            self._process.stdin.write(lines)
            await self._process.stdin.drain()
            self.sent += _LINES_PER_WRITE
            await asyncio.sleep(self._pause_s)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._process is not None
        assert self._feeder is not None
        assert self._process.stdin is not None
        self._feeder.cancel()
        await asyncio.gather(self._feeder, return_exceptions=True)
        self._process.stdin.close()  # mosquitto_pub publishes what it has read, then ends
        _, stderr = await asyncio.wait_for(self._process.communicate(), 60)
        if self._process.returncode != 0:
            pytest.fail(f"mosquitto_pub failed ({self._process.returncode}): {stderr.decode()[-500:]}")

"""Runs the real gateway agent as its own process (``outpost gateway run``), so tests can kill it."""

import asyncio
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import Self


def gateway_toml(
    *, village_id: str, gateway_id: str, broker_port: int, state_dir: Path, heartbeat_interval_s: float
) -> str:
    return f"""
environment = "development"
village_id = "{village_id}"
gateway_id = "{gateway_id}"
state_dir = "{state_dir}"

[broker]
host = "127.0.0.1"
port = {broker_port}
keepalive_s = 5

[config]
heartbeat_interval_s = {heartbeat_interval_s}
telemetry_interval_s = 0.5

[[devices]]
kind = "checkpoint_camera"
id = "cam-entrance"
params = {{ period_s = 0.5 }}
"""


class GatewayProcess:
    def __init__(self, config_path: Path) -> None:
        self._config_path = config_path
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "outpost_cli", "--log-level", "warning", "gateway", "run",
            "--config", str(self._config_path),
        )  # fmt: skip
        return self

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            self.process.send_signal(signal.SIGCONT)
            await self.process.wait()

"""Reads the gateway's basic health for the heartbeat."""

import time
from pathlib import Path

import psutil

from protocol.messages import GatewayHealth


class HealthProbe:
    def __init__(self, disk_path: Path) -> None:
        self._disk_path = disk_path
        self._started = time.monotonic()
        psutil.cpu_percent(interval=None)  # primes the counter; the first reading would be 0.0

    def read(self) -> GatewayHealth:
        self._disk_path.mkdir(parents=True, exist_ok=True)
        return GatewayHealth(
            cpu_percent=min(100.0, psutil.cpu_percent(interval=None)),
            memory_percent=psutil.virtual_memory().percent,
            disk_percent=psutil.disk_usage(str(self._disk_path)).percent,
            uptime_s=round(time.monotonic() - self._started, 3),
        )

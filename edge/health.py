"""Reads the gateway's own vital signs for the heartbeat: CPU, memory, disk, uptime, SoC temperature."""

import logging
import time
from pathlib import Path
from typing import Final, TypedDict

import psutil

from protocol.bounds import MAX_TEMPERATURE_C, MIN_TEMPERATURE_C

logger = logging.getLogger(__name__)

_THERMAL_ZONE: Final = Path("/sys/class/thermal/thermal_zone0/temp")  # a Raspberry Pi's SoC sensor


class SystemHealth(TypedDict):
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    uptime_s: float
    temperature_c: float | None


def soc_temperature(zone: Path = _THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C from the kernel's thermal zone (millidegrees), or None where absent."""
    try:
        celsius = round(int(zone.read_text(encoding="ascii").strip()) / 1000, 1)
    except (OSError, ValueError):
        return None
    return celsius if MIN_TEMPERATURE_C <= celsius <= MAX_TEMPERATURE_C else None  # a broken sensor: no reading


class HealthProbe:
    def __init__(self, disk_path: Path, thermal_zone: Path = _THERMAL_ZONE) -> None:
        self._disk_path = disk_path
        self._thermal_zone = thermal_zone
        self._started = time.monotonic()
        psutil.cpu_percent(interval=None)  # primes the counter; the first reading would be 0.0

    def read(self) -> SystemHealth:
        self._disk_path.mkdir(parents=True, exist_ok=True)
        return SystemHealth(
            cpu_percent=min(100.0, psutil.cpu_percent(interval=None)),
            memory_percent=psutil.virtual_memory().percent,
            disk_percent=psutil.disk_usage(str(self._disk_path)).percent,
            uptime_s=round(time.monotonic() - self._started, 3),
            temperature_c=soc_temperature(self._thermal_zone),
        )

"""The agent's footprint under a village's load: RSS and CPU of a real ``outpost gateway run`` process.

Load: 2 cameras at 5 fps, each a real RTSP stream (GStreamer's server, :mod:`simulators.infra.rtsp`, RTP
over TCP, a 640x360 10 fps H.264 entrance clip played as a live camera), through the full detection
pipeline, and 50 sensors reporting every second (simulated counters), publishing to a local Mosquitto. The agent runs
with the environment its systemd unit sets (``Environment=`` lines of ``edge/systemd/outpost-gateway.service``),
as in production, and is sampled with psutil after a warm-up. Baseline for RSS: a Python process
that only imports OpenCV, numpy, aiomqtt and pydantic, measured in the same run. Goals: RSS <= 80 MB,
CPU <= 10% of one core.
"""

import asyncio
import os
import shlex
import statistics
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Final

import psutil

from bench.harness import Figure, Profile
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.rtsp import Mount, RtspServer
from simulators.video_clips import entrance_clip

RSS_GOAL_MB: Final = 80.0
CPU_GOAL_PERCENT: Final = 10.0
_SENSORS: Final = 50
_CAMERAS: Final = 2
_MB: Final = 1024 * 1024


def _config(directory: Path, broker_port: int, cameras: list[str]) -> Path:
    lines = [
        'environment = "development"',
        'village_id = "bench-village"',
        'gateway_id = "gw-bench"',
        f'state_dir = "{directory / "state"}"',
        "[broker]",
        f"port = {broker_port}",
        "[config]",
        "heartbeat_interval_s = 10",
        "telemetry_interval_s = 5",
    ]
    for camera, url in enumerate(cameras):
        lines += [
            "[[devices]]",
            'kind = "checkpoint_camera"',
            f'id = "cam-{camera}"',
            'driver = "camera"',
            f'params = {{ source = "{url}", fps = 5.0 }}',
            'detection = { line = { name = "gate" } }',
        ]
    for sensor in range(_SENSORS):
        lines += [
            "[[devices]]",
            'kind = "checkpoint_camera"',  # the simulated counter: two readings every period
            f'id = "sensor-{sensor}"',
            "params = { period_s = 1.0, per_minute = 30.0 }",
        ]
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _unit_environment() -> dict[str, str]:
    """The variables the gateway's systemd unit sets for the agent (its ``Environment=`` lines)."""
    unit = files("edge").joinpath("systemd/outpost-gateway.service").read_text(encoding="utf-8")
    environment: dict[str, str] = {}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.removeprefix("Environment=")):
                name, _, value = assignment.partition("=")
                environment[name] = value
    return environment


async def _sample(pid: int, seconds: float) -> tuple[list[float], float]:
    """RSS samples (MB) every half second, and CPU as percent of one core over the whole period."""
    process = psutil.Process(pid)
    start_cpu = sum(process.cpu_times()[:2])
    started = time.monotonic()
    rss: list[float] = []
    while time.monotonic() - started < seconds:
        rss.append(process.memory_info().rss / _MB)
        await asyncio.sleep(0.5)
    cpu = (sum(process.cpu_times()[:2]) - start_cpu) / (time.monotonic() - started) * 100
    return rss, cpu


async def _baseline_rss() -> float:
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import cv2, numpy, aiomqtt, pydantic, time; time.sleep(3)"
    )
    await asyncio.sleep(2.0)
    rss = psutil.Process(probe.pid).memory_info().rss / _MB
    await probe.wait()
    return rss


async def _footprint(seconds: float, warmup_s: float) -> tuple[float, float, float]:
    """The agent's median and peak RSS (MB) and CPU (% of one core) with two RTSP cameras and the sensors."""
    with tempfile.TemporaryDirectory(prefix="outpost-footprint-") as tmp:
        directory = Path(tmp)
        clip = entrance_clip(directory / "entrance.mp4", count_in=3, count_out=2, fps=10)
        mounts = [Mount(f"/cam-{camera}", clip.path, playback="live") for camera in range(_CAMERAS)]
        with RtspServer(mounts, directory=directory / "rtsp") as rtsp:
            cameras = [rtsp.url(mount.path) for mount in mounts]
            async with MosquittoBroker() as broker:
                config = _config(directory, broker.port, cameras)
                command = ("-m", "outpost_cli", "--log-level", "warning", "gateway", "run", "--config", str(config))
                agent = await asyncio.create_subprocess_exec(
                    sys.executable, *command, env={**os.environ, **_unit_environment()}
                )
                try:
                    await asyncio.sleep(warmup_s)
                    if agent.returncode is not None:
                        raise RuntimeError(f"the agent exited with {agent.returncode} during warm-up")
                    rss, cpu = await _sample(agent.pid, seconds)
                finally:
                    agent.terminate()
                    await agent.wait()
    return statistics.median(rss), max(rss), cpu


def footprint_figures(profile: Profile) -> list[Figure]:
    seconds, warmup_s = (10.0, 5.0) if profile.target_s < 0.1 else (60.0, 10.0)
    median_rss, _peak_rss, cpu = asyncio.run(_footprint(seconds, warmup_s))
    baseline = asyncio.run(_baseline_rss())
    return [
        Figure.measured(
            "edge.agent_rss_mb", median_rss, "MB", better="lower", runs=1, goal=RSS_GOAL_MB, baseline=baseline
        ),
        Figure.measured("edge.agent_cpu_percent", cpu, "% of one core", better="lower", runs=1, goal=CPU_GOAL_PERCENT),
    ]

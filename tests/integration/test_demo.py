"""The project's main job: ``outpost demo`` runs a simulated county end to end and reports it."""

import asyncio
import json
import socket
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
async def test_demo_delivers_a_case_for_every_alert_and_accounts_for_every_press(broker: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "outpost_cli", "--log-level", "warning", "demo",
        "--villages", "3", "--node-villages", "2", "--duration", "10", "--press-every", "0.5", "--fault-every", "2",
        "--broker", broker, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout)
    assert summary["villages"] == 3
    assert summary["gateways_seen_online"] == 3
    assert summary["sensor_nodes"] == 6  # two villages with three firmware nodes each
    assert summary["panic_presses"] >= 10
    assert summary["node_presses"] >= 1
    assert sum(summary["node_faults"].values()) >= 3
    panic_alerts = summary["alerts_by_kind"]["panic"]
    assert panic_alerts + summary["presses_on_open_alerts"] == summary["panic_presses"]  # none lost, none doubled
    assert summary["cases_delivered"] == summary["alerts_raised"] == sum(summary["alerts_by_kind"].values())
    assert summary["duplicate_case_requests"] == 0
    assert summary["rejected_messages"] == 0
    assert summary["telemetry_points_stored"] > 0
    assert summary["press_to_case"]["count"] == panic_alerts


async def test_demo_stops_cleanly_with_a_clear_message_when_its_api_port_is_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "outpost_cli", "--log-level", "warning", "demo",
            "--duration", "5", "--api-port", str(port), "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    assert stdout == b""
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(stderr.decode().split())
    assert "Traceback" not in stderr.decode()

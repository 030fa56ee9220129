"""The agent tells systemd it is ready, pings the watchdog while healthy, and says when it stops."""

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.settings import BrokerSettings, EdgeSettings
from edge.watchdog import SystemdNotifier
from simulators.infra.ports import free_port


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(1024).decode())
        except BlockingIOError:
            return messages


async def test_ready_and_watchdog_pings_reach_systemd(tmp_path: Path, notify_socket: socket.socket) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "20000"})
    assert notifier.watchdog_interval_s == pytest.approx(0.01)

    notifier.notify("READY=1")
    pinging = asyncio.create_task(notifier.keep_alive())
    await asyncio.sleep(0.1)
    pinging.cancel()
    await asyncio.gather(pinging, return_exceptions=True)

    messages = _received(notify_socket)
    assert messages[0] == "READY=1"
    assert messages.count("WATCHDOG=1") >= 2


def test_without_systemd_nothing_is_sent_and_no_watchdog_runs() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    notifier.notify("READY=1")  # a no-op, not an error


def test_an_unreachable_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}).notify("READY=1")
    assert "cannot notify systemd" in caplog.text


async def test_the_agent_reports_ready_pings_and_stopping(tmp_path: Path, notify_socket: socket.socket) -> None:
    settings = EdgeSettings(
        environment="development",
        village_id="dongshan",
        gateway_id="gw-dongshan",
        broker=BrokerSettings(port=free_port()),  # nobody there: the agent runs on, offline
        state_dir=tmp_path / "state",
    )
    # A ping every 50 ms: the socket queues only ~10 datagrams unread (net.unix.max_dgram_qlen).
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "100000"})
    agent = GatewayAgent(settings, prebuilt([]), notifier=notifier)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    await asyncio.sleep(0.2)
    stop.set()
    await running

    messages = _received(notify_socket)
    assert messages[0] == "READY=1"
    assert "WATCHDOG=1" in messages
    assert "STOPPING=1" in messages


def test_a_full_systemd_queue_never_blocks_the_agent(tmp_path: Path, notify_socket: socket.socket) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    for _ in range(100):  # far more than the socket queues while nobody reads
        notifier.notify("WATCHDOG=1")
    assert _received(notify_socket)

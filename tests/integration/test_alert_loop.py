"""The alert loop against the real stack: gateways on Mosquitto, the fleet, the reference governance platform.

A panic press becomes exactly one case that the platform dispatches, resolves, rates and closes, each step
reaching the alert as a signed callback (also when the platform repeats and reorders them); cases raised
while the platform is down are each opened once when it returns; an escalation falls due on time across
a fleet restart; a flapping camera keeps one alert, which clears and withdraws its case once the camera
stays back; staff cancelling an alert withdraws its case once.
"""

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from edge.adapters.base import DeviceAdapter
from edge.adapters.registry import build_adapter
from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.settings import BrokerSettings, EdgeSettings
from fleet.api.server import HttpServer
from fleet.settings import AlertSettings, DeliverySettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, GatewayConfig
from protocol.governance import CASES_PATH, IDEMPOTENCY_HEADER, CaseEvent, CaseStatus, CaseUpdateKind, CloseReason
from protocol.messages import Severity
from simulators.governance.callbacks import DeliveryOutcome
from simulators.governance.case_loop import CaseLoopSettings, officer_for
from simulators.governance.platform import GovernancePlatform
from simulators.infra.mosquitto import MosquittoBroker
from simulators.scenes import Camera
from tests.integration.conftest import (
    FleetFactory,
    GovernanceFactory,
    Platform,
    eventually,
    fleet_api,
    fleet_settings,
    running_service,
)

pytestmark = pytest.mark.integration

VILLAGE = "dongshan"
GATEWAY = "gw-dongshan"
GRID = "dongshan-grid-2"

WORKS_CASES = CaseLoopSettings(
    dispatch_after_s=0.2,
    resolve_after_s=0.2,
    feedback_after_s=0.2,
    close_after_s=0.0,
    rating=4,
    comment="the officer came within minutes",
    retry_base_s=0.05,
    retry_cap_s=0.5,
)
OFFICERS_BUSY = CaseLoopSettings(dispatch_after_s=3600.0, retry_base_s=0.05, retry_cap_s=0.5)
"""Nobody is dispatched during the test: a case stays open until the fleet withdraws it."""
QUICK_RETRIES = DeliverySettings(retry_base_s=0.2, retry_cap_s=2.0)
OUTAGE_S = 60.0


def panic_button(device_id: str = "panic-school", grid_id: str = GRID) -> SimulatedPanicButton:
    return SimulatedPanicButton(DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id=device_id, grid_id=grid_id), utc_now_ms)


GatewayFactory = Callable[[Sequence[DeviceAdapter]], Awaitable[GatewayAgent]]


@pytest.fixture
async def start_gateway(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[GatewayFactory]:
    """Starts a real gateway agent with the given adapters as its devices, on the test's Mosquitto.

    Tests request it before ``start_fleet``, so that their gateways stop after their fleets: a gateway's
    shutdown wakes the fleet's alert loops, and a wake that meets the fleet's stop in ``asyncio.wait_for``
    (Python 3.11) swallows the cancellation, leaving the fleet unable to stop."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(adapters: Sequence[DeviceAdapter]) -> GatewayAgent:
        settings = EdgeSettings(
            environment="development",
            village_id=VILLAGE,
            gateway_id=GATEWAY,
            broker=BrokerSettings(port=mosquitto.port),
            state_dir=tmp_path / "gateway",
            config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
            devices=[adapter.spec for adapter in adapters],
        )
        agent = GatewayAgent(settings, prebuilt(adapters))
        stop = asyncio.Event()
        running.append((stop, asyncio.create_task(agent.run(stop))))
        await eventually(lambda: _is_set(agent.uplink.connected), what="gateway connecting")
        return agent

    yield start
    for stop, task in running:
        stop.set()
        await task


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def alerts_of(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/alerts")
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


async def alert(api: httpx.AsyncClient, alert_id: str) -> dict[str, Any]:
    response = await api.get(f"/alerts/{alert_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def history(api: httpx.AsyncClient, alert_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/alerts/{alert_id}/history")
    response.raise_for_status()
    steps: list[dict[str, Any]] = response.json()
    return steps


async def settled(platform: GovernancePlatform) -> None:
    async with asyncio.timeout(30):
        await platform.settled()


def steps_by(steps: list[dict[str, Any]], actor: str) -> list[tuple[str, str]]:
    return [(step["step"], step["to_state"]) for step in steps if step["actor"] == actor]


# --- 1. panic press → one case, worked by the platform, every step back on the alert -------------


@pytest.mark.parametrize("faulty", [False, True], ids=["in-order", "duplicated-and-reordered"])
async def test_a_panic_case_is_dispatched_resolved_rated_and_closed_by_the_platform(
    governance_platform: GovernanceFactory, start_gateway: GatewayFactory, start_fleet: FleetFactory, faulty: bool
) -> None:
    platform = await governance_platform(case_loop=WORKS_CASES)
    if faulty:
        platform.faults.duplicate_callbacks(4)
        platform.faults.reorder_callbacks(1)  # the fleet sees "resolved" before "dispatched"
    fleet = await start_fleet(governance=platform)
    button = panic_button()
    await start_gateway([button])

    async with fleet_api(fleet.http.url) as api:
        button.press(held_ms=900)
        await eventually(lambda: _has_cases(platform, 1), what="the case reaching the platform")
        [case] = platform.ledger.cases
        alert_id = str(case.alert_id)

        async def closed() -> bool:
            return bool((await alert(api, alert_id))["state"] == "closed")

        await eventually(closed, timeout_s=30, what="the platform closing the alert's case")
        await settled(platform)
        final = await alert(api, alert_id)
        steps = await history(api, alert_id)
        assert len(await alerts_of(api)) == 1

    case = platform.ledger.cases[0]
    assert len(platform.ledger.cases) == 1
    assert platform.ledger.duplicate_requests == 0
    assert case.status is CaseStatus.CLOSED
    assert case.close_reason is CloseReason.COMPLETED
    assert [event.event for event in case.events] == [
        CaseEvent.DISPATCHED,
        CaseEvent.RESOLVED,
        CaseEvent.FEEDBACK,
        CaseEvent.CLOSED,
    ]
    assert all(d.outcome is DeliveryOutcome.DELIVERED for d in platform.callbacks.deliveries)
    if faulty:  # the faults did happen: repeats were sent, and one callback came before its predecessor
        assert platform.faults.injected["duplicate"] == 4
        assert platform.faults.injected["reorder"] == 1
        assert any(attempt.status == HTTPStatus.SERVICE_UNAVAILABLE for attempt in platform.callbacks.attempts)

    officer = officer_for(case)
    assert final["state"] == "closed"
    assert final["case_id"] == case.case_id
    assert final["delivery_state"] == "delivered"
    assert final["assignee"] == f"{officer.name} ({officer.officer_id}, grid {GRID})"
    assert (final["feedback_rating"], final["feedback_comment"]) == (4, "the officer came within minutes")
    assert steps[0]["step"] == "raise"
    assert steps[0]["actor"] == f"gateway {GATEWAY}"
    assert steps_by(steps, "platform") == [
        ("dispatch", "dispatched"),
        ("resolve", "resolved"),
        ("note", "resolved"),  # the rating: a note on the resolved alert
        ("close", "closed"),
    ]
    platform_steps = [step for step in steps if step["actor"] == "platform"]
    assert officer.name in platform_steps[0]["reason"]
    assert platform_steps[1]["reason"] == case.resolution_note
    assert platform_steps[2]["reason"] == "feedback 4/5: the officer came within minutes"


async def _has_cases(platform: GovernancePlatform, count: int) -> bool:
    return len(platform.ledger.cases) >= count


# --- 2. the platform down for a minute --------------------------------------------------------------


@pytest.mark.timeout(OUTAGE_S + 180)
async def test_cases_raised_while_the_platform_is_down_are_each_opened_once_when_it_returns(
    governance_platform: GovernanceFactory, start_gateway: GatewayFactory, start_fleet: FleetFactory
) -> None:
    platform = await governance_platform()
    fleet = await start_fleet(governance=platform, delivery=QUICK_RETRIES)
    buttons = [panic_button(f"panic-{n}", f"{VILLAGE}-grid-{n}") for n in range(5)]
    presses_at_s = [1.0, OUTAGE_S / 3, 2 * OUTAGE_S / 3, OUTAGE_S - 5]
    loop = asyncio.get_running_loop()
    await start_gateway(buttons)

    async with fleet_api(fleet.http.url) as api:
        # The platform goes down just after opening the first case, before its answer reaches the fleet.
        platform.faults.hang(1, after_processing=True)
        buttons[0].press()
        await eventually(lambda: _hanging(platform), what="the first case opened, its answer held")
        port = platform.server.port
        await platform.server.stop()  # once the fleet gave up on its answer; from now on, connections refused
        down_at = loop.time()
        for button, at_s in zip(buttons[1:], presses_at_s, strict=True):
            await asyncio.sleep(max(0.0, down_at + at_s - loop.time()))
            button.press()

        async def all_stored_and_pending() -> bool:
            alerts = await alerts_of(api)
            return len(alerts) == len(buttons) and all(a["delivery_state"] == "pending" for a in alerts)

        await eventually(all_stored_and_pending, what="every alert stored, waiting for the platform")
        assert fleet.health().alerts.blocked is not None
        await asyncio.sleep(max(0.0, down_at + OUTAGE_S - loop.time()))

        platform.server = HttpServer(platform.app, "127.0.0.1", port, "governance")  # back, on the same port
        await platform.server.start()
        up_at, up_ms = loop.time(), utc_now_ms()

        async def all_delivered() -> bool:
            return all(a["delivery_state"] == "delivered" for a in await alerts_of(api))

        await eventually(all_delivered, timeout_s=150, what="every case delivered after the platform returned")
        drained_s = loop.time() - up_at
        alerts = await alerts_of(api)
        deliveries = (await api.get("/deliveries", params={"state": "delivered"})).json()

    creates = platform.requests.matching("POST", CASES_PATH)
    after_s = [round((request.received_at_ms - up_ms) / 1000, 1) for request in creates[1:]]
    print(f"\nafter a {OUTAGE_S:.0f} s outage: {drained_s:.1f} s to drain; requests at {after_s} s")  # noqa: T201
    ledger = platform.ledger
    cases_by_alert = {str(case.alert_id): case.case_id for case in ledger.cases}
    assert len(ledger.cases) == len(buttons)
    assert {a["id"]: a["case_id"] for a in alerts} == cases_by_alert
    assert ledger.duplicate_requests == 1  # the first case's request, sent again: the platform kept its case
    assert len(creates) == len(buttons) + 1
    assert {request.header(IDEMPOTENCY_HEADER) for request in creates} == set(cases_by_alert)
    assert max(d["attempts"] for d in deliveries) >= 2  # the fleet did try during the outage


async def _hanging(platform: GovernancePlatform) -> bool:
    return platform.faults.hanging == 1


# --- 3. a fleet restart mid-escalation -------------------------------------------------------------


async def test_an_escalation_due_while_the_fleet_restarts_fires_on_time(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform, start_gateway: GatewayFactory
) -> None:
    deadline_s = 4.0
    settings = fleet_settings(
        tmp_path,
        mosquitto,
        platform.server.url,
        client_id="fleet-restarted",
        alerts=AlertSettings(rules={"ack_deadline_s": {Severity.CRITICAL: deadline_s}}),
    )
    button = panic_button()
    await start_gateway([button])

    async with running_service(settings) as first, fleet_api(first.http.url) as api:
        button.press()

        async def stored() -> bool:
            return len(await alerts_of(api)) == 1

        await eventually(stored, what="the alert reaching the fleet")
        [raised] = await alerts_of(api)
    assert first.alert_timers.escalated == 0, "the first fleet ran past the deadline: the test must restart it sooner"
    restarted_before_deadline = utc_now_ms() < raised["escalate_at_ms"]

    async with running_service(settings) as second, fleet_api(second.http.url) as api:
        print(f"\nfleet restarted {'before' if restarted_before_deadline else 'after'} the deadline")  # noqa: T201

        async def escalated() -> bool:
            # The counter as well as the stored level: the API sees the escalation as soon as it is
            # committed, a moment before the timers count it.
            level = (await alert(api, raised["id"]))["level"]
            return level != "village" and second.alert_timers.escalated >= 1

        await eventually(escalated, timeout_s=30, what="the escalation after the restart, by the restarted fleet")
        steps = await history(api, raised["id"])

    assert raised["level"] == "village"
    assert raised["state"] == "raised"
    deadline_ms = raised["escalate_at_ms"]
    assert deadline_ms == raised["raised_at_ms"] + round(deadline_s * 1000)
    escalation = next(step for step in steps if step["step"] == "escalate")
    assert escalation["actor"] == "fleet"
    assert escalation["level"] == "town"
    assert escalation["to_state"] == "raised"
    assert escalation["at_ms"] >= deadline_ms  # never early
    assert escalation["at_ms"] < deadline_ms + round(deadline_s * 1000)  # before the next level's deadline


# --- 4. a flapping camera --------------------------------------------------------------------------


class FlappingCamera:
    """A real HTTP snapshot camera the test switches off (503) and on; counts what it answered."""

    def __init__(self) -> None:
        ok, jpeg = cv2.imencode(".jpg", Camera().frame(0))  # a textured scene: a flat one looks covered
        assert ok
        self.jpeg = jpeg.tobytes()
        self.up = True
        self.frames = 0
        self.failures = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not camera.up:
                    camera.failures += 1
                    self.send_error(HTTPStatus.SERVICE_UNAVAILABLE)
                    return
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(camera.jpeg)))
                self.end_headers()
                self.wfile.write(camera.jpeg)
                camera.frames += 1

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/snapshot.jpg"

    @contextlib.contextmanager
    def serving(self) -> Iterator["FlappingCamera"]:
        thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join()

    async def drop(self) -> None:
        """Stop answering frames until the gateway has seen it fail (it reports the camera offline)."""
        seen = self.failures
        self.up = False
        await eventually(lambda: self._above(self.failures, seen), what="the camera failing a fetch")

    async def restore(self) -> None:
        """Answer frames again until the gateway has read one (it reports the camera online)."""
        seen = self.frames
        self.up = True
        await eventually(lambda: self._above(self.frames, seen), what="the camera serving a frame")

    @staticmethod
    async def _above(count: int, seen: int) -> bool:
        return count > seen


async def test_a_flapping_camera_keeps_one_alert_and_case_which_clear_once_it_stays_back(
    governance_platform: GovernanceFactory, start_gateway: GatewayFactory, start_fleet: FleetFactory
) -> None:
    flaps = 25
    platform = await governance_platform(case_loop=OFFICERS_BUSY)
    fleet = await start_fleet(governance=platform, alerts=AlertSettings(rules={"clear_hold_s": 2.0}))
    camera = FlappingCamera()
    spec = DeviceSpec(
        kind=DeviceKind.CHECKPOINT_CAMERA,
        id="cam-gate",
        driver=DriverKind.CAMERA,
        params={"source": camera.url, "fps": 20.0, "backoff_min_s": 0.05, "backoff_max_s": 0.1, "read_timeout_s": 2.0},
    )

    with camera.serving():
        await start_gateway([build_adapter(spec, utc_now_ms)])
        async with fleet_api(fleet.http.url) as api:
            await camera.restore()  # its first frame
            for _ in range(flaps):
                await camera.drop()
                await camera.restore()
            back_at = utc_now_ms()

            async def cleared() -> bool:
                alerts = await alerts_of(api)
                return len(alerts) == 1 and alerts[0]["state"] == "cleared"

            await eventually(cleared, timeout_s=30, what="the camera's alert clearing once it stayed back")
            [cleared_alert] = await alerts_of(api)
            row = await fleet.alerts.get(cleared_alert["id"])
            assert row is not None

            async def withdrawn() -> bool:
                return platform.ledger.cases[0].status is CaseStatus.CLOSED

            await eventually(withdrawn, what="the camera's case being withdrawn")
            await settled(platform)

            async def closing_noted() -> bool:
                return ("note", "cleared") in steps_by(await history(api, cleared_alert["id"]), "platform")

            await eventually(closing_noted, what="the platform's closing callback reaching the alert")
            steps = await history(api, cleared_alert["id"])

    assert cleared_alert["kind"] == "camera_offline"
    assert cleared_alert["device_id"] == "cam-gate"
    assert row.occurrences == flaps
    [case] = platform.ledger.cases
    assert len(platform.ledger.requests) == 1
    assert str(case.alert_id) == cleared_alert["id"]
    assert case.close_reason is CloseReason.WITHDRAWN
    [update] = platform.ledger.update_requests
    assert update.kind is CaseUpdateKind.CLEARED
    assert [(step["step"], step["actor"]) for step in steps] == [
        ("raise", f"gateway {GATEWAY}"),
        ("clear", "fleet"),
        ("note", "platform"),
    ]
    clear = steps[1]
    assert clear["at_ms"] >= back_at  # cleared only after the camera stayed back, never between flaps


# --- 5. staff cancel an alert ----------------------------------------------------------------------


async def test_staff_cancelling_an_alert_withdraws_its_case_exactly_once(
    governance_platform: GovernanceFactory, start_gateway: GatewayFactory, start_fleet: FleetFactory
) -> None:
    platform = await governance_platform(case_loop=OFFICERS_BUSY)
    fleet = await start_fleet(governance=platform)
    button = panic_button()
    reason = "a pupil pressed it on the way out of school"
    await start_gateway([button])

    async with fleet_api(fleet.http.url) as api:
        button.press()

        async def delivered() -> bool:
            alerts = await alerts_of(api)
            return len(alerts) == 1 and alerts[0]["delivery_state"] == "delivered"

        await eventually(delivered, what="the case reaching the platform")
        [raised] = await alerts_of(api)
        cancelled = await api.post(f"/alerts/{raised['id']}/cancel", json={"reason": reason})
        assert cancelled.status_code == HTTPStatus.OK, cancelled.text

        async def withdrawn() -> bool:
            return platform.ledger.cases[0].status is CaseStatus.CLOSED

        await eventually(withdrawn, what="the case being withdrawn")
        await settled(platform)

        async def closing_noted() -> bool:
            return ("note", "cancelled") in steps_by(await history(api, raised["id"]), "platform")

        await eventually(closing_noted, what="the platform's closing callback reaching the alert")
        final = await alert(api, raised["id"])
        withdrawals = (await api.get("/deliveries", params={"alert_id": raised["id"]})).json()

    assert cancelled.json()["state"] == "cancelled"
    assert final["state"] == "cancelled"
    [case] = platform.ledger.cases
    assert case.close_reason is CloseReason.WITHDRAWN
    [update] = platform.ledger.update_requests
    assert update.kind is CaseUpdateKind.CANCELLED
    assert update.reason == reason
    assert update.case_id == case.case_id
    assert len(case.updates) == 1
    assert [(d["action"], d["state"], d["attempts"]) for d in reversed(withdrawals)] == [
        ("open_case", "delivered", 1),
        ("withdraw_case", "delivered", 1),
    ]
    assert [e.event for e in case.events] == [CaseEvent.CLOSED]

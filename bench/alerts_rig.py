"""What the alert figures run on: a fleet as deployed, the reference governance platform, and gateways.

:class:`AlertsRig` starts a real VictoriaMetrics and a real Mosquitto (``simulators.infra``), the reference
governance platform (:class:`~simulators.governance.platform.GovernancePlatform`, in this process, on a
loopback port: its request log notes each request's arrival, UTC epoch ms), ``outpost fleet run`` as a
child process configured only through ``OUTPOST_FLEET_*`` variables (development mode on loopback, defaults
except the platform's URL, the REST API's port, ``presence.default_interval_s`` and the base alert rules' offline
hold-off, :data:`OFFLINE_AFTER_MISSED_HEARTBEATS`), and a bare alert subscriber
(:mod:`bench.alerts_bare_receiver`). Gateways come in groups (:class:`GatewayGroup`, one process of
:mod:`bench.alerts_gateways` each), so that a whole group can lose power at once.

With ``OUTPOST_BENCH_PROFILE_DIR`` set, ``fleet run`` runs under cProfile (``alerts-fleet-run.prof``;
:func:`bench.fleet_rig.profiling_options`): figures taken so are not figures.
"""

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import httpx
from sqlalchemy import func, select

from bench.fleet_gateways import VILLAGES
from bench.fleet_rig import FleetProcess, database_url, fleet_environment, profiling_options
from fleet.db.engine import create_engine, session_factory
from fleet.db.schema import AlertRepeatRow, AlertRow
from fleet.settings import DEVELOPMENT_ADMIN_TOKEN, DEVELOPMENT_GOVERNANCE_SIGNING_SECRET, DEVELOPMENT_GOVERNANCE_TOKEN
from protocol.clock import utc_now_ms
from protocol.governance import CASES_PATH, CaseRequest
from simulators.governance.platform import GovernancePlatform
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.ports import free_port
from simulators.infra.victoria import VictoriaMetricsServer

logger = logging.getLogger(__name__)

OFFLINE_AFTER_MISSED_HEARTBEATS: Final = 1
"""The base rules' offline hold-off: the least the rules allow (a gateway_offline alert falls due once its
gateway has been silent one heartbeat interval since it was last heard)."""
_ANSWER_LIMIT: Final = 16 * 1024 * 1024
_CAUGHT_UP_LAG_S: Final = 1.0
_CAUGHT_UP_LOOKS: Final = 4
_POLL_S: Final = 0.05
_IMPORT_TIMEOUT_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class CaseArrival:
    """One ``POST /cases`` as the platform received it."""

    alert_id: str
    kind: str
    gateway_id: str
    received_ms: int
    status: int | None


class GatewayGroup:
    """One process of simulated gateways (:mod:`bench.alerts_gateways`)."""

    def __init__(self, process: asyncio.subprocess.Process, first: int, count: int) -> None:
        self.process = process
        self.first = first
        self.count = count
        self._rounds = 0

    def next_round(self) -> int:
        """A round number this group has not pressed with yet: its presses use device ``panic-ROUND``, so each
        is a condition of its own (correlation would fold a press into an open alert of the same device)."""
        self._rounds += 1
        return self._rounds

    async def answer(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError(f"simulated gateways {self.first}… exited with {await self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def press(self, round_: int, presses: int, spacing_ms: float) -> tuple[dict[str, float], dict[str, float]]:
        """``presses`` panic presses (see :mod:`bench.alerts_gateways`): when each alert to the fleet, and each
        one to the bare subscriber, was published (UTC epoch ms) by event id."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"press {round_} {presses} {spacing_ms}\n".encode())
        await self.process.stdin.drain()
        answer = await self.answer(timeout_s=60.0 + presses * spacing_ms / 1000)
        return answer["fleet"], answer["bare"]

    async def power_cut(self) -> int:
        """SIGKILL: every connection drops without a DISCONNECT, so the broker publishes every Last Will;
        when, in UTC epoch ms."""
        cut_ms = utc_now_ms()
        self.process.kill()
        await self.process.wait()
        return cut_ms

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


class AlertsRig:
    """Use as ``async with``; see the module docstring."""

    def __init__(self, directory: Path, *, heartbeat_s: float, telemetry_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self.telemetry_s = telemetry_s
        self._directory = directory
        self._stack = contextlib.AsyncExitStack()
        self.broker = MosquittoBroker()
        self.victoria = VictoriaMetricsServer()
        self.platform = GovernancePlatform(
            token=DEVELOPMENT_GOVERNANCE_TOKEN, signing_secrets=[DEVELOPMENT_GOVERNANCE_SIGNING_SECRET]
        )
        self.fleet: FleetProcess | None = None
        self.api = httpx.AsyncClient(timeout=30.0, headers={"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"})
        self._database = directory / "fleet.db"
        self._engine = create_engine(database_url(self._database))
        self._sessions = session_factory(self._engine)
        self._bare: asyncio.subprocess.Process | None = None
        self._bare_arrivals: dict[str, float] = {}
        self._groups: list[GatewayGroup] = []
        self.online_expected = 0

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        stack = self._stack
        stack.push_async_callback(self._engine.dispose)
        stack.push_async_callback(self.api.aclose)
        await stack.enter_async_context(self.victoria)
        await stack.enter_async_context(self.broker)
        await stack.enter_async_context(self.platform)
        api_port = free_port()
        watch = {"offline_after_missed_heartbeats": OFFLINE_AFTER_MISSED_HEARTBEATS}
        env = fleet_environment(
            self._database,
            self.broker,
            self.victoria,
            client_id="bench-alerts-fleet",
            extra={
                "OUTPOST_FLEET_API__PORT": str(api_port),
                "OUTPOST_FLEET_GOVERNANCE__URL": self.platform.url,
                "OUTPOST_FLEET_PRESENCE__DEFAULT_INTERVAL_S": str(self.heartbeat_s),
                # The rules are strict: a number in a scalar variable (…__WATCH__OFFLINE_AFTER_MISSED_HEARTBEATS=1)
                # arrives as a string and is refused, so the watch limits go in as JSON.
                "OUTPOST_FLEET_ALERTS__RULES__WATCH": json.dumps(watch),
            },
        )
        self.fleet = FleetProcess(
            ["run"], env, self._directory / "fleet-run.log", python_options=profiling_options("alerts-fleet-run")
        )
        stack.push_async_callback(self.fleet.close)
        await self.fleet.start("subscribed at")
        self.api.base_url = httpx.URL(f"http://127.0.0.1:{api_port}")
        await self._start_bare_receiver()

    async def _start_bare_receiver(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.alerts_bare_receiver", self.broker.host, str(self.broker.port), str(VILLAGES),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._bare = process

        async def stop() -> None:
            if process.returncode is None:
                process.kill()
            await process.wait()

        self._stack.push_async_callback(stop)
        assert process.stdout is not None
        if (await asyncio.wait_for(process.stdout.readline(), 30)).strip() != b"subscribed":
            raise RuntimeError("the bare alert receiver did not subscribe")
        reader = asyncio.create_task(self._read_bare(process))

        async def stop_reading() -> None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

        self._stack.push_async_callback(stop_reading)

    async def _read_bare(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            event_id, arrived_ms = line.split()
            self._bare_arrivals[event_id.decode()] = float(arrived_ms)

    async def bare_arrivals(self, event_ids: list[str], timeout_s: float) -> dict[str, float]:
        """When the bare subscriber received each of ``event_ids`` (UTC epoch ms); waits for all of them."""
        deadline = time.monotonic() + timeout_s
        while not all(event_id in self._bare_arrivals for event_id in event_ids):
            if time.monotonic() > deadline:
                missing = sum(event_id not in self._bare_arrivals for event_id in event_ids)
                raise RuntimeError(f"the bare subscriber did not receive {missing} alerts within {timeout_s} s")
            await asyncio.sleep(_POLL_S)
        return {event_id: self._bare_arrivals[event_id] for event_id in event_ids}

    # --- gateways -----------------------------------------------------------------------------

    async def start_gateways(self, first: int, count: int) -> GatewayGroup:
        """Start gateways ``first … first + count - 1`` in a process of their own; return once the fleet counts
        them online and has caught up with their traffic."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.alerts_gateways", self.broker.host, str(self.broker.port), str(first),
            str(count), str(self.heartbeat_s), str(self.telemetry_s),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_ANSWER_LIMIT,
        )  # fmt: skip
        group = GatewayGroup(process, first, count)
        self._groups.append(group)
        self._stack.push_async_callback(group.stop)
        started = time.monotonic()
        answer = await group.answer(timeout_s=120.0)
        if answer != {"ready": count}:
            raise RuntimeError(f"simulated gateways {first}… answered {answer}")
        self.online_expected += count
        await self.caught_up(timeout_s=180.0)
        logger.info(
            "%d gateways online and the fleet caught up %.1f s after they started", count, time.monotonic() - started
        )
        return group

    async def power_cut(self, group: GatewayGroup) -> int:
        self.online_expected -= group.count
        return await group.power_cut()

    # --- the fleet ----------------------------------------------------------------------------

    async def stop_store(self) -> None:
        """Stop VictoriaMetrics (SIGTERM; it keeps its data for :meth:`start_store` on the same port)."""
        await self.victoria.stop()

    async def start_store(self) -> None:
        await self.victoria.start()

    async def import_sites(self, sheet: str) -> dict[str, Any]:
        """``POST /sites/import`` the CSV ``sheet`` with the admin token; the import report."""
        response = await self.api.post(
            "/sites/import", content=sheet.encode(), headers={"Content-Type": "text/csv"}, timeout=_IMPORT_TIMEOUT_S
        )
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    async def lane(self, name: str) -> dict[str, Any]:
        """One ingest lane's counters as ``/healthz`` shows them (``alerts``, ``control`` or ``bulk``)."""
        health = await self.health()
        lanes: dict[str, dict[str, Any]] = {lane["lane"]: lane for lane in health["ingest"]["lanes"]}
        return lanes[name]

    def pids(self) -> dict[str, int | None]:
        """The processes of the rig by name, for :class:`~bench.fleet_rig.CpuSplit`."""
        live = [group for group in self._groups if group.process.returncode is None]
        return {
            "fleet run": self.fleet.pid if self.fleet else None,
            "mosquitto": self.broker.pid,
            "victoria-metrics": self.victoria.pid,
            "gateways": live[-1].process.pid if live else None,
            "bench (and platform)": os.getpid(),
        }

    async def health(self) -> dict[str, Any]:
        response = await self.api.get("/healthz")
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    async def caught_up(self, timeout_s: float) -> None:
        """Wait until the fleet counts exactly the gateways expected online and its ingest lags under a second,
        a few looks in a row (registering gateways at first contact, a transaction each, leaves a backlog)."""
        deadline = time.monotonic() + timeout_s
        looks = 0
        while looks < _CAUGHT_UP_LOOKS:
            health = await self.health()
            lag = health["ingest"]["oldest_unacked_s"] or 0.0
            ok = health["gateways_online"] == self.online_expected and lag <= _CAUGHT_UP_LAG_S
            looks = looks + 1 if ok else 0
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{health['gateways_online']} gateways online (expected {self.online_expected}), "
                    f"ingest lag {lag} s, after {timeout_s} s"
                )
            await asyncio.sleep(0.25)

    async def presence_changed_ms(self) -> dict[str, int]:
        """When the fleet last changed each gateway's presence (UTC epoch ms), by gateway id."""
        response = await self.api.get("/gateways")
        response.raise_for_status()
        return {row["id"]: row["presence_changed_ms"] for row in response.json()}

    async def alerts_of_kind(self, kind: str) -> list[AlertRow]:
        """Every stored alert of ``kind`` (read from the fleet's database: the API pages and leaves out
        ``occurrences``)."""
        async with self._sessions() as session:
            return list((await session.scalars(select(AlertRow).where(AlertRow.kind == kind))).all())

    async def repeats_of(self, alert_ids: list[str]) -> int:
        """How many repeats the fleet counted on those alerts (correlation), as stored."""
        query = select(func.count()).select_from(AlertRepeatRow).where(AlertRepeatRow.alert_id.in_(alert_ids))
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    # --- the platform -------------------------------------------------------------------------

    def case_arrivals(self) -> list[CaseArrival]:
        """Every ``POST /cases`` the platform received, repeats included, in arrival order."""
        arrivals = []
        for entry in self.platform.requests.matching("POST", CASES_PATH):
            request = CaseRequest.model_validate_json(entry.body)
            arrivals.append(
                CaseArrival(str(request.alert_id), request.kind, request.gateway_id, entry.received_at_ms, entry.status)
            )
        return arrivals

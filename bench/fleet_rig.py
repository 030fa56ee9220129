"""What the fleet figures run on: fleet processes as deployed, their settings, and a count of stored points.

The fleet runs here as it does in production: ``outpost fleet ingest --index N`` and ``outpost fleet
run`` as child processes (``python -m outpost_cli …``), configured only through ``OUTPOST_FLEET_*``
variables, against a real Mosquitto and a real VictoriaMetrics (``simulators.infra``). Each process
logs to its own file; the figures read nothing from those files but "ready" lines and the final status.

Stored points are counted in VictoriaMetrics as a reader sees them (:class:`StoredPoints`); the
gateway fleet of the presence figures is :class:`GatewayFleetRig`, and :class:`CpuSplit` says which
process used the CPU while a figure was taken.
"""

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import httpx
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.fleet_gateways import gateway_id
from fleet.db.engine import create_engine, migrate
from fleet.settings import DEVELOPMENT_ADMIN_TOKEN
from protocol.clock import utc_now_ms
from protocol.config_signing import private_key_pem, public_key_pem
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.ports import free_port
from simulators.infra.victoria import VictoriaMetricsServer

logger = logging.getLogger(__name__)

_STOPPED_STATUS: Final = re.compile(r"stopped: (\{.*\})")
_POLL_S: Final = 0.05
_CAUGHT_UP_LAG_S: Final = 1.0  # acknowledged after storage: the writer flushes every 0.5 s
_CAUGHT_UP_LOOKS: Final = 4
PROFILE_DIR_VARIABLE: Final = "OUTPOST_BENCH_PROFILE_DIR"
_ANSWER_LIMIT: Final = 16 * 1024 * 1024  # one line of JSON from the gateways: ~100 bytes per gateway and report


def fleet_environment(
    database: Path,
    broker: MosquittoBroker,
    victoria: VictoriaMetricsServer,
    *,
    client_id: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """This process's environment without any ``OUTPOST_FLEET_*`` of its own, plus the fleet's settings:
    a SQLite registry at ``database``, the broker, and VictoriaMetrics through its InfluxDB write API, all on
    loopback in development mode (its secrets, no TLS). Everything else keeps the defaults unless ``extra``
    says otherwise."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OUTPOST_FLEET_")}
    env.update({
        "OUTPOST_FLEET_ENVIRONMENT": "development",
        "OUTPOST_FLEET_DATABASE_URL": database_url(database),
        "OUTPOST_FLEET_BROKER__HOST": broker.host,
        "OUTPOST_FLEET_BROKER__PORT": str(broker.port),
        "OUTPOST_FLEET_BROKER__CLIENT_ID": client_id,
        "OUTPOST_FLEET_TIMESERIES__INFLUX__URL": victoria.url,
        "OUTPOST_FLEET_TIMESERIES__INFLUX__TOKEN": "unused-by-victoria",
    })  # fmt: skip
    env.update(extra or {})
    return env


def database_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def migrate_database(path: Path) -> None:
    """Create the registry's schema, as ``fleet run`` does before any worker starts (workers never migrate)."""
    engine = create_engine(database_url(path))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def profiling_options(name: str) -> tuple[str, ...]:
    """Python options that run a fleet process under cProfile, writing ``{name}.prof`` into the directory
    named by ``OUTPOST_BENCH_PROFILE_DIR``; none when it is unset. cProfile slows the process down
    (figures taken so are not figures) but shows where its time goes."""
    directory = os.environ.get(PROFILE_DIR_VARIABLE)
    if not directory:
        return ()
    Path(directory).mkdir(parents=True, exist_ok=True)
    return ("-m", "cProfile", "-o", str(Path(directory) / f"{name}.prof"))


class FleetProcess:
    """``python -m outpost_cli fleet ARGS`` as a child process, its output in ``log``.

    ``python_options`` go before ``-m`` (e.g. ``-m cProfile -o FILE`` to profile the process)."""

    def __init__(
        self, args: list[str], env: Mapping[str, str], log: Path, *, python_options: tuple[str, ...] = ()
    ) -> None:
        self._args = args
        self._env = dict(env)
        self.log = log
        self._python_options = python_options
        self.process: asyncio.subprocess.Process | None = None
        self._log_offset = 0

    async def start(self, ready_line: str, timeout_s: float = 60.0) -> None:
        """Start it and return once it logged ``ready_line``; raise if it exits or takes too long."""
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, *self._python_options, "-m", "outpost_cli", "fleet", *self._args,
                env=self._env, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while ready_line not in self.output():
            if self.process.returncode is not None:
                raise RuntimeError(f"fleet {' '.join(self._args)} exited with {self.process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"fleet {' '.join(self._args)} not ready after {timeout_s} s: {self.tail()}")
            await asyncio.sleep(_POLL_S)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def output(self) -> str:
        """What this run of the process logged (the log file may hold earlier runs before it)."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode("utf-8", errors="replace")

    def tail(self, chars: int = 2000) -> str:
        return self.output()[-chars:]

    async def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, and wait for a clean exit (it drains and logs its final status)."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"fleet {' '.join(self._args)} did not stop within {timeout_s} s") from None
        if code != 0:
            raise RuntimeError(f"fleet {' '.join(self._args)} exited with {code}: {self.tail()}")

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop it if it still runs: SIGTERM (so that it flushes, and cProfile writes its file), SIGKILL
        if it does not exit within ``timeout_s``. Never raises: for clean-up paths."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        """SIGKILL (cleanup after a failure; nothing is flushed)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def final_status(self) -> dict[str, object]:
        """The ingest status a worker logs when it stops (``received``, ``unacked``, …)."""
        found = _STOPPED_STATUS.findall(self.output())
        if not found:
            raise RuntimeError(f"no final status in the log of fleet {' '.join(self._args)}: {self.tail()}")
        status: dict[str, object] = json.loads(found[-1])
        return status


class StoredPoints:
    """Counts the points VictoriaMetrics holds in a stretch of time, as a reader of it would see them.

    A write VictoriaMetrics has answered sits in its in-memory buffer for up to a second before reads see
    it, and its ``/metrics`` page is refreshed about once a second too; so each look forces a flush
    (``/internal/force_flush``) and then counts with a query (``count_over_time``)."""

    def __init__(self, victoria: VictoriaMetricsServer) -> None:
        self._client = httpx.AsyncClient(base_url=victoria.url, timeout=30.0)

    async def count(self, selector: str, first_ms: int, last_ms: int) -> int:
        """How many samples of the series ``selector`` selects have timestamps in ``[first_ms, last_ms]``."""
        (await self._client.get("/internal/force_flush")).raise_for_status()
        query = f"sum(count_over_time({selector}[{last_ms - first_ms + 1}ms]))"
        response = await self._client.get("/api/v1/query", params={"query": query, "time": f"{last_ms / 1000:.3f}"})
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return int(result[0]["value"][1]) if result else 0

    async def reach(self, selector: str, first_ms: int, last_ms: int, target: int, timeout_s: float) -> float:
        """Wait until ``count(...)`` is at least ``target``; the ``time.perf_counter()`` of the look that saw it."""
        deadline = time.perf_counter() + timeout_s
        while True:
            count = await self.count(selector, first_ms, last_ms)
            now = time.perf_counter()
            if count >= target:
                return now
            if now > deadline:
                raise RuntimeError(f"only {count} of {target} samples of {selector} stored after {timeout_s} s")
            await asyncio.sleep(_POLL_S)

    async def close(self) -> None:
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class GatewayFleetSizes:
    """How many gateways, how often they heartbeat, and which of them the figures stop."""

    gateways: int
    interval_s: float
    missed_heartbeats: int
    will_gateways: int  # gateways 0 … will_gateways - 1 run in a process of their own, killed to fire their Wills

    @property
    def heartbeat_timeout_s(self) -> float:
        return self.missed_heartbeats * self.interval_s


class GatewayFleetRig:
    """A fleet with every simulated gateway online: VictoriaMetrics, Mosquitto, ``outpost fleet run``,
    and the gateways (:mod:`bench.fleet_gateways`, one connection each) in two processes, so that one
    group can lose its connections at once (:meth:`drop_will_gateways`) while the other goes on.

    Use it as ``async with``; it returns once the fleet counts every gateway online. The fleet runs with
    its production settings except ``presence.missed_heartbeats`` and ``presence.default_interval_s``
    (from the sizes), and the REST API on a free port (:attr:`api`, authorised as the development admin).

    The fleet signs configs with a key made for the rig (``configs.signing_key_file``, as production
    requires; :attr:`signing_key`), and every gateway holds its public half, as enrollment leaves it.
    The gateways keep their applied configs in a directory on tmpfs (``/dev/shm``) where there is one:
    in the field each gateway writes its own disk, so 2,000 fsyncs queueing for this machine's one disk
    would be a cost of the rig, not of config push (on ``/tmp`` here, ~0.7 ms each).
    """

    def __init__(
        self, sizes: GatewayFleetSizes, directory: Path, *, fleet_settings: Mapping[str, str] | None = None
    ) -> None:
        """``fleet_settings``: more ``OUTPOST_FLEET_*`` variables, to try a setting (the figures use none)."""
        self.sizes = sizes
        self._directory = directory
        self._fleet_settings = dict(fleet_settings or {})
        self._stack = contextlib.AsyncExitStack()
        self.broker = MosquittoBroker()
        self.victoria = VictoriaMetricsServer()
        self.fleet: FleetProcess | None = None
        self.api = httpx.AsyncClient(timeout=30.0, headers={"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"})
        self._will_group: asyncio.subprocess.Process | None = None
        self._others: asyncio.subprocess.Process | None = None
        self.signing_key = Ed25519PrivateKey.generate()
        self._signing_key_file = directory / "config-signing.pem"
        self._public_key_file = directory / "config-signing.pub.pem"
        self._state_dir = directory / "gateway-state"

    @property
    def gateway_ids(self) -> list[str]:
        return [gateway_id(index) for index in range(self.sizes.gateways)]

    @property
    def will_gateway_ids(self) -> list[str]:
        return self.gateway_ids[: self.sizes.will_gateways]

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
        stack, sizes = self._stack, self.sizes
        stack.push_async_callback(self.api.aclose)
        await stack.enter_async_context(self.victoria)
        await stack.enter_async_context(self.broker)
        self._keep_signing_key()
        self._make_state_dir()
        api_port = free_port()
        env = fleet_environment(
            self._directory / "fleet.db",
            self.broker,
            self.victoria,
            client_id="bench-fleet",
            extra={
                "OUTPOST_FLEET_API__PORT": str(api_port),
                "OUTPOST_FLEET_PRESENCE__MISSED_HEARTBEATS": str(sizes.missed_heartbeats),
                "OUTPOST_FLEET_PRESENCE__DEFAULT_INTERVAL_S": str(sizes.interval_s),
                "OUTPOST_FLEET_CONFIGS__SIGNING_KEY_FILE": str(self._signing_key_file),
                **self._fleet_settings,
            },
        )
        self.fleet = FleetProcess(
            ["run"], env, self._directory / "fleet-run.log", python_options=profiling_options("fleet-run")
        )
        stack.push_async_callback(self.fleet.close)
        await self.fleet.start("subscribed at")
        self.api.base_url = httpx.URL(f"http://127.0.0.1:{api_port}")
        started = time.monotonic()
        self._will_group = await self._gateways(0, sizes.will_gateways)
        self._others = await self._gateways(sizes.will_gateways, sizes.gateways - sizes.will_gateways)
        await self.all_online(timeout_s=180.0)
        logger.info(
            "%d new gateways online and the fleet caught up with them %.1f s after they started",
            sizes.gateways, time.monotonic() - started,
        )  # fmt: skip

    def _keep_signing_key(self) -> None:
        descriptor = os.open(self._signing_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(private_key_pem(self.signing_key))
        self._public_key_file.write_text(public_key_pem(self.signing_key.public_key()), encoding="ascii")

    def _make_state_dir(self) -> None:
        shm = Path("/dev/shm")  # noqa: S108 - a private directory made by mkdtemp, removed on exit
        if shm.is_dir() and os.access(shm, os.W_OK):
            self._state_dir = Path(tempfile.mkdtemp(prefix="outpost-bench-gateways-", dir=shm))
            self._stack.callback(shutil.rmtree, self._state_dir, ignore_errors=True)
        else:
            self._state_dir.mkdir()

    async def _gateways(self, first: int, count: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fleet_gateways",
            self.broker.host, str(self.broker.port), str(self.sizes.interval_s), str(first), str(count),
            str(self._public_key_file), str(self._state_dir),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_ANSWER_LIMIT,
        )  # fmt: skip

        async def stop() -> None:
            if process.returncode is None:
                process.kill()
            await process.wait()

        self._stack.push_async_callback(stop)
        answer = await self._answer(process, timeout_s=120.0)
        if answer != {"ready": count}:
            raise RuntimeError(f"simulated gateways {first}… answered {answer}")
        return process

    @staticmethod
    async def _answer(process: asyncio.subprocess.Process, timeout_s: float) -> dict[str, Any]:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError(f"simulated gateways exited with {await process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def pids(self) -> dict[str, int | None]:
        """The processes of the rig by name, for :class:`CpuSplit`."""
        return {
            "fleet run": self.fleet.pid if self.fleet else None,
            "mosquitto": self.broker.pid,
            "victoria-metrics": self.victoria.pid,
            "gateways": self._others.pid if self._others else None,
            "bench": os.getpid(),
        }

    async def health(self) -> dict[str, Any]:
        """The fleet's ``/healthz`` report."""
        response = await self.api.get("/healthz")
        response.raise_for_status()
        report: dict[str, Any] = response.json()
        return report

    async def online(self) -> int:
        """How many gateways the fleet counts online now."""
        return int((await self.health())["gateways_online"])

    async def lag_s(self) -> float:
        """How long the oldest message the fleet took and has not acknowledged yet has waited (0 if none)."""
        return float((await self.health())["ingest"]["oldest_unacked_s"] or 0.0)

    async def all_online(self, timeout_s: float) -> None:
        """Wait until the fleet counts every gateway online and has caught up with their traffic: registering
        thousands of gateways at first contact (a transaction each), or recording a config report from each,
        leaves a backlog behind it."""
        deadline = time.monotonic() + timeout_s
        caught_up = 0
        while caught_up < _CAUGHT_UP_LOOKS:
            health = await self.health()
            lag = health["ingest"]["oldest_unacked_s"] or 0.0
            everyone = health["gateways_online"] >= self.sizes.gateways
            caught_up = caught_up + 1 if everyone and lag <= _CAUGHT_UP_LAG_S else 0
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{health['gateways_online']} of {self.sizes.gateways} gateways online, ingest lag {lag} s, "
                    f"after {timeout_s} s"
                )
            await asyncio.sleep(0.25)

    async def gateways(self) -> list[dict[str, Any]]:
        """Every gateway as the fleet's REST API shows it (``GET /gateways``)."""
        response = await self.api.get("/gateways")
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()
        return rows

    async def silence(self, ids: list[str]) -> dict[str, int]:
        """Stop those gateways' heartbeats without a word; when each sent its last one (UTC epoch ms)."""
        process = self._others
        assert process is not None
        answer = await self._ask(process, "silence " + " ".join(ids))
        last: dict[str, int] = answer["last_heartbeat_ms"]
        return last

    async def config_reports(self) -> dict[str, list[list[Any]]]:
        """The config reports every gateway sent since the last call, as each gateway noted them:
        ``{id: [[version, status, received_ms, reported_ms], …]}`` (see ``bench.fleet_gateway_config``)."""
        reports: dict[str, list[list[Any]]] = {}
        for process in (self._will_group, self._others):
            if process is not None and process.returncode is None:
                reports.update((await self._ask(process, "reports"))["reports"])
        return reports

    async def _ask(self, process: asyncio.subprocess.Process, command: str) -> dict[str, Any]:
        assert process.stdin is not None
        process.stdin.write((command + "\n").encode())
        await process.stdin.drain()
        return await self._answer(process, timeout_s=30.0)

    async def drop_will_gateways(self) -> int:
        """Kill the process holding the first :attr:`GatewayFleetSizes.will_gateways` gateways (their
        connections close without a DISCONNECT, so the broker publishes their Wills); when, in UTC epoch ms."""
        process = self._will_group
        assert process is not None
        killed_ms = utc_now_ms()
        process.kill()
        await process.wait()
        return killed_ms


class CpuSplit:
    """Where the CPU went during a timed stretch, in cores (CPU seconds per second of wall time; 1.0 is one
    core busy all the time): each named process (user + system), and ``others``, what every other process
    on the machine used meanwhile. Logged beside the ingest figures to show what limits them."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float] = {}
        self._start_busy = 0.0
        self._started = 0.0

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    @staticmethod
    def _busy() -> float:
        """CPU seconds every core of the machine spent on anything but idling, since boot."""
        times = psutil.cpu_times()
        kinds = ("user", "nice", "system", "irq", "softirq", "steal")  # guest time is counted in user
        return float(sum(getattr(times, kind, 0.0) for kind in kinds))

    def start(self) -> None:
        self._started = time.perf_counter()
        self._start_busy = self._busy()
        self._start = {name: self._cpu(process) for name, process in self._processes.items()}

    def cores(self) -> dict[str, float]:
        """Cores each process, and all the others together, used since :meth:`start`."""
        wall = time.perf_counter() - self._started
        ours = {name: (self._cpu(process) - self._start[name]) / wall for name, process in self._processes.items()}
        others = max(0.0, (self._busy() - self._start_busy) / wall - sum(ours.values()))
        return {name: round(cores, 2) for name, cores in [*ours.items(), ("others", others)]}

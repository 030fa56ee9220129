"""The fleet service: builds every part from the settings and runs them as one asyncio process.

Tasks: the MQTT ingest consumer, the time-series writer, the presence sweeper, the registry
flusher, the case delivery worker and the HTTP API. Each long-running task is supervised: a
failure is logged and the task restarted with backoff, except permanent failures (the broker
refusing the fleet's credentials), which stop the service loudly.

With a dynamic security administrator configured (``enrollment.dynsec_*``), the fleet manages access
to its broker: before its own MQTT sessions connect it sets deny-by-default and creates its own
client and role (:mod:`fleet.broker_access.bootstrap`), enrollment provisions gateways' logins, and
the inventory moves and deletes them with their gateways. Without one it manages none of that.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import httpx

from fleet.access.audit import AuditLog
from fleet.access.places import Places
from fleet.access.tokens import TokenStore
from fleet.alerts.callbacks import CaseCallbacks
from fleet.alerts.channels.configured import configured_channels
from fleet.alerts.dead_letters import DeadLetterAlerts
from fleet.alerts.delivery import DeliveryWorker, RetryPolicy
from fleet.alerts.gateway_watch import GatewayWatch
from fleet.alerts.handling import AlertHandling
from fleet.alerts.ingest_watch import IngestWatch
from fleet.alerts.outbox import Outbox
from fleet.alerts.outbox_queue import OutboxQueue, Pending
from fleet.alerts.rules.book import RuleBook
from fleet.alerts.rules.layers import base_rules
from fleet.alerts.source_time import source_window_of
from fleet.alerts.store import AlertStore
from fleet.alerts.timers import AlertTimers
from fleet.api.app import create_app
from fleet.api.context import ApiContext
from fleet.api.limits import RequestLimits
from fleet.api.schemas import AlertDeliveryStatus, ChannelStatus, HealthReport, TimeSeriesStatus
from fleet.api.server import HttpServer
from fleet.broker_access.bootstrap import FleetLogin, prepare_broker_at_start
from fleet.commands.dispatcher import CommandDispatcher
from fleet.commands.store import CommandStore
from fleet.configs.publisher import ConfigPublisher
from fleet.configs.push import ConfigPush
from fleet.configs.reports import ReportRecorder
from fleet.configs.signing import ConfigSigner
from fleet.db.engine import create_engine, migrate, session_factory
from fleet.enrollment.broker import DynsecProvisioner
from fleet.enrollment.renewal import CertificateRenewal
from fleet.enrollment.service import EnrollmentService
from fleet.errors import FleetError
from fleet.gateways.presence import PresenceTracker
from fleet.gateways.registry import Registry
from fleet.ingest.dead_letters import DeadLetters
from fleet.ingest.lanes import IngestLanes
from fleet.ingest.quarantine import Quarantine
from fleet.ingest.router import IngestRouter
from fleet.ingest.status import ingest_problems, ingest_status
from fleet.ingest.subscriptions import Lane, lane_client_id
from fleet.jobs.engine import JobEngine
from fleet.jobs.store import JobStore
from fleet.mqtt.client import session_prefix
from fleet.mqtt.downlink import Downlink
from fleet.releases.store import ReleaseStore
from fleet.retention import RetentionPurge
from fleet.settings import FleetSettings
from fleet.sites.inventory import GatewayInventory
from fleet.sites.store import SiteStore
from fleet.state_export.task import StateExport  # --- state export ---
from fleet.supervision import cancel_and_wait, supervise
from fleet.timeseries.factory import writer_for
from fleet.timeseries.history_factory import history_for
from protocol.clock import utc_now_ms
from protocol.messages import ConfigReported, Heartbeat
from protocol.reconnect import Backoff
from protocol.request_signing import RequestVerifier

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 10.0
"""How long the fleet's tasks get to end once cancelled at stop; one that does not is logged with where it hangs."""


class FleetService:
    def __init__(
        self,
        settings: FleetSettings,
        *,
        clock: Callable[[], int] = utc_now_ms,
        governance_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._engine = create_engine(settings.database_url)
        sessions = session_factory(self._engine)
        self.downlink = Downlink(settings.broker.downlink(), f"{session_prefix(settings.broker)}-downlink")
        channels = configured_channels(settings, governance_transport=governance_transport, publisher=self.downlink)
        outbox = Outbox(channel.route for channel in channels)
        self.rules = RuleBook(sessions, clock, base_rules(settings.alerts.rules))
        rules = self.rules.for_village
        self.alerts = AlertStore(
            sessions,
            clock,
            rules,
            outbox=outbox,
            on_queued=self._offer,
            source_window=source_window_of(settings.alerts),
        )
        self.presence = PresenceTracker(settings.presence.missed_heartbeats, settings.presence.default_interval_s)
        self.gateway_watch = GatewayWatch(
            self.alerts, rules, clock, heard=self.presence.heard, on_raised=self._alert_changed
        )
        self.registry = Registry(sessions, clock, on_presence=self.gateway_watch.presence_changed)
        self.alert_timers = AlertTimers(self.alerts, clock, batch=settings.alerts.sweep_limit)
        self.outbox = OutboxQueue(sessions)
        dead_letters = DeadLetterAlerts(self.alerts, clock, self._alert_changed)
        retry = RetryPolicy.from_settings(settings.delivery)
        self.deliveries = [
            DeliveryWorker(
                self.outbox,
                channel,
                clock,
                retry,
                on_dead=dead_letters.report,
                batch=settings.delivery.batch,
                in_flight=settings.delivery.in_flight,
                pause=Backoff(base_s=settings.delivery.retry_base_s, cap_s=settings.delivery.pause_cap_s),
            )
            for channel in channels
        ]
        self.writer = writer_for(settings.timeseries)
        # --- state export ---
        self.state_export = (
            StateExport.from_settings(settings, sessions, self.writer, self.health, clock)
            if settings.state_export.enabled
            else None
        )
        """The fleet's state as time series for dashboards; None when ``state_export.enabled`` is off."""
        # --- end state export ---
        signer = ConfigSigner.from_settings(settings)
        self.configs = ConfigPush(sessions, clock, signer, erase_retained=self.downlink.erase_retained)
        self.config_publisher = ConfigPublisher(self.configs, sessions, self.downlink, settings.configs, clock)
        self.config_reports = ReportRecorder(self.configs.record_reports)
        self.commands = CommandDispatcher(
            CommandStore(sessions, clock), self.downlink, clock, settings.commands, signer
        )
        self.releases = ReleaseStore.from_settings(settings.releases, sessions, clock)
        self.jobs = JobEngine(
            JobStore(sessions, clock), sessions, self.commands, self.releases, clock, tick_s=settings.jobs.tick_s
        )
        self.provisioner = DynsecProvisioner.from_settings(settings)
        """The broker's dynamic security administrator; None: the fleet manages no broker access."""
        self.enrollment = EnrollmentService.from_settings(
            settings,
            sessions,
            clock,
            initial_config=self.configs.initial_config,
            signing_public_key=self.configs.signing_public_key,
        )
        self.router = IngestRouter(
            self.registry,
            self.presence,
            self.writer,
            self.alerts,
            self._alert_changed,
            clock,
            on_config_reported=self._config_reported,
            on_command_response=self.commands.on_response,
            on_heartbeat=self._heartbeat,
        )
        self.quarantine = Quarantine(self.provisioner, duration_s=settings.ingest.quarantine_s)
        self.dead_letters = DeadLetters.from_settings(
            settings.ingest,
            sessions,
            clock,
            on_flood=self.quarantine.flooding if settings.ingest.quarantine_after else None,
        )
        lanes = [Lane.ALERTS, Lane.CONTROL] + ([Lane.BULK] if settings.ingest.in_process else [])
        self.ingest = IngestLanes.from_settings(
            settings,
            {lane: lane_client_id(session_prefix(settings.broker), lane) for lane in lanes},
            self.router,
            self.writer,
            self.dead_letters,
        )
        self.ingest_watch = IngestWatch(
            self.gateway_watch,
            self.dead_letters.sources,
            self.ingest,
            self.quarantine,
            knows=self.registry.knows,
            stuck_after_s=settings.ingest.stuck_after_s,
            quiet_s=settings.ingest.dead_letter_quiet_s,
        )
        self.http = HttpServer(
            create_app(
                ApiContext(
                    registry=self.registry,
                    alerts=self.alerts,
                    handling=AlertHandling(sessions, clock, self._alert_changed, outbox=outbox),
                    callbacks=CaseCallbacks(sessions, clock, self._alert_changed, outbox=outbox),
                    outbox=self.outbox,
                    rules=self.rules,
                    callback_verifier=RequestVerifier(
                        [secret.get_secret_value() for secret in settings.governance.signing_secrets]
                    ),
                    health=self.health,
                    sites=SiteStore(sessions, clock),
                    inventory=GatewayInventory(sessions, clock, access=self.provisioner, configs=self.configs),
                    tokens=TokenStore(sessions, clock, settings.api.admin_token.get_secret_value()),
                    audit=AuditLog(sessions),
                    configs=self.configs,
                    enrollment=self.enrollment,
                    health_history=history_for(settings.timeseries),
                    commands=self.commands,
                    dead_letters=self.dead_letters,
                    places=Places(sessions),
                    releases=self.releases,
                    jobs=self.jobs,
                    clock=clock,
                ),
                RequestLimits(
                    body_bytes=settings.api.max_body_bytes,
                    public_body_bytes=settings.api.max_public_body_bytes,
                    import_bytes=settings.api.max_import_bytes,
                    upload_bytes=settings.releases.max_file_bytes,
                    public_rate_per_s=settings.api.public_rate_per_s,
                    public_burst=settings.api.public_burst,
                ),
            ),
            settings.api.host,
            settings.api.port,
            "fleet",
            tls_cert_file=settings.api.tls_cert_file,
            tls_key_file=settings.api.tls_key_file,
        )
        self.retention = RetentionPurge(sessions, clock, settings.retention)
        certificates = self.enrollment.certificates
        self.certificate_renewal = (
            CertificateRenewal(
                sessions,
                certificates,
                self.commands,
                clock,
                renew_days=settings.enrollment.gateway_cert_renew_days,
                interval_s=settings.enrollment.gateway_cert_check_interval_s,
            )
            if certificates is not None
            else None
        )
        """Renews gateways' TLS certificates before they expire; None without a gateway CA."""
        self.ready = asyncio.Event()

    def health(self) -> HealthReport:
        ingest = ingest_status(
            self.ingest,
            self.router,
            self.writer,
            self.dead_letters,
            self.quarantine,
            stuck_after_s=self.settings.ingest.stuck_after_s,
        )
        channels = [
            ChannelStatus(
                name=worker.channel.name, delivered=worker.delivered, dead=worker.dead, blocked=worker.blocked
            )
            for worker in self.deliveries
        ]
        blocked = next((f"{c.name}: {c.blocked}" for c in channels if c.blocked), None)
        problems = ingest_problems(ingest)
        if not self.writer.healthy:
            problems.append(
                f"time-series store {self.writer.sink.name} unavailable: {self.writer.buffered} points held"
            )
        problems += [f"alert channel {c.name} blocked: {c.blocked}" for c in channels if c.blocked]
        expiring = self.configs.signer.expiry_warning(self._clock())
        if expiring is not None:
            problems.append(expiring)
        return HealthReport(
            status="degraded" if problems else "ok",
            problems=problems,
            gateways_online=self.presence.online_count,
            ingest=ingest,
            timeseries=TimeSeriesStatus(
                sink=self.writer.sink.name,
                healthy=self.writer.healthy,
                written_points=self.writer.written,
                buffered_points=self.writer.buffered,
                dropped_points=self.writer.dropped,
                rejected_points=self.writer.rejected,
            ),
            alerts=AlertDeliveryStatus(
                raised=self.router.alerts_raised,
                delivered=sum(c.delivered for c in channels),
                dead=sum(c.dead for c in channels),
                blocked=blocked if channels else "no alert channel configured (governance.url, ...)",
                channels=channels,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; raise on a permanent failure. Everything opened is closed."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await migrate(self._engine)
            await self.registry.load()
            await self.rules.load()
            await self.dead_letters.load()
            presence = self.settings.presence
            self.gateway_watch.expect(
                self.registry.known_gateways().items(), presence.missed_heartbeats * presence.default_interval_s
            )
            if not await self._prepare_broker(stop):
                return
            tasks = [
                *(self._task(f"ingest-{consumer.lane}", consumer.run) for consumer in self.ingest),
                self._task("dead-letters", self.dead_letters.run),
                self._task("timeseries-writer", self.writer.run),
                self._task("presence-sweeper", self._sweep_presence),
                self._task("registry-flusher", self._flush_registry),
                self._task("downlink", self.downlink.run),
                self._task("config-publisher", self.config_publisher.run),
                self._task("config-reports", self.config_reports.run),
                self._task("command-sweeper", self.commands.run),
                self._task("alert-timers", self.alert_timers.run),
                self._task("gateway-watch", self.gateway_watch.run),
                self._task("ingest-watch", self.ingest_watch.run),
                self._task("quarantine", self.quarantine.run),
                self._task("alert-rules", self._refresh_rules),
                self._task("retention", self.retention.run),
                self._task("jobs", self.jobs.run),
            ]
            tasks += [self._task(f"delivery-{worker.channel.name}", worker.run) for worker in self.deliveries]
            if self.certificate_renewal is not None:
                tasks.append(self._task("certificate-renewal", self.certificate_renewal.run))
            if self.state_export is not None:  # --- state export ---
                tasks.append(self._task("state-export", self.state_export.run))
            await self.http.start()
            self.ready.set()
            stopper = asyncio.create_task(self._until(stop), name="stop")
            tasks.append(stopper)
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():  # store and acknowledge what was taken, so the broker need not resend it
                await self.ingest.drain(self.settings.ingest.drain_timeout_s)
        finally:
            results = await cancel_and_wait(tasks, _STOP_GRACE_S)
            await self._close()
        for result in results:
            if isinstance(result, FleetError):
                raise result

    async def _prepare_broker(self, stop: asyncio.Event) -> bool:
        """Lay the fleet's footing on its broker before its sessions connect; False if stopped meanwhile."""
        if self.provisioner is None:
            logger.info(
                "no enrollment.dynsec_* configured: broker access is not managed (the fleet's own client, "
                "deny-by-default, gateways' logins when they are enrolled, moved or removed)"
            )
            return True
        broker = self.settings.broker
        login = None
        if broker.username is not None and broker.password is not None:
            share_group = self.settings.ingest.share_group
            downlink_password = broker.downlink_password.get_secret_value() if broker.downlink_password else None
            login = FleetLogin(
                broker.username,
                broker.password.get_secret_value(),
                share_group,
                broker.downlink_username,
                downlink_password,
            )
        backoff = Backoff(base_s=0.5, cap_s=10.0)
        preparing = asyncio.create_task(prepare_broker_at_start(self.provisioner.access, login, backoff))
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({preparing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (preparing, stopping):
                task.cancel()
            await asyncio.gather(preparing, stopping, return_exceptions=True)
        if preparing not in done:
            return False
        preparing.result()  # raises a refusal: the fleet cannot run on a broker that will not let it in
        return True

    @staticmethod
    async def _until(stop: asyncio.Event) -> None:
        await stop.wait()

    def _task(self, name: str, body: Callable[[], Awaitable[None]]) -> "asyncio.Task[None]":
        return asyncio.create_task(supervise(name, body), name=name)

    def _config_reported(self, village_id: str, report: ConfigReported) -> "asyncio.Future[None]":
        self.gateway_watch.config_reported(village_id, report)
        return self.config_reports.add(village_id, report)

    def _offer(self, due: Sequence[Pending]) -> None:
        """A new alert's messages due now go straight to their channels' workers."""
        for worker in self.deliveries:
            worker.offer(due)

    def _heartbeat(self, village_id: str, heartbeat: Heartbeat) -> None:
        self.gateway_watch.heartbeat(village_id, heartbeat)
        self.jobs.observe(heartbeat.gateway_id, heartbeat.health.update)

    def _alert_changed(self) -> None:
        """An alert took a step: its messages are due now, and the earliest deadline may have changed."""
        for worker in self.deliveries:
            worker.wake()
        self.alert_timers.wake()

    async def _sweep_presence(self) -> None:
        """Expire gateways silent past their heartbeat deadline, but not while ingest is behind: their
        heartbeats may be waiting in it (a config push's reports, a slow store), and a deadline runs from a
        heartbeat's arrival, so the sweep after ingest caught up judges everyone fairly."""
        postponed = False
        while True:
            await asyncio.sleep(self.settings.presence.sweep_interval_s)
            if self.ingest[Lane.CONTROL].behind():
                if not postponed:
                    logger.warning("presence: heartbeat silence is not judged while ingest is behind")
                postponed = True
                continue
            if postponed:
                logger.info("presence: ingest caught up; judging heartbeat silence again")
                postponed = False
            self.registry.apply(self.presence.expire(self._clock()))

    async def _refresh_rules(self) -> None:
        """Reread the rule layers now and then: a village moved town, or was first heard of, since the last write."""
        while True:
            await asyncio.sleep(self.settings.alerts.rules_refresh_s)
            await self.rules.refresh()

    async def _flush_registry(self) -> None:
        while True:
            await asyncio.sleep(self.settings.registry_flush_interval_s)
            await self.registry.flush()

    async def _close(self) -> None:
        await self.http.stop()
        for what, last_write in (("time series", self.writer.flush), ("registry", self.registry.flush)):
            try:
                await last_write()
            except FleetError as exc:
                logger.error("could not write the last %s updates before stopping: %s", what, exc)
        if self.writer.buffered:
            logger.error("stopping with %d time-series points unwritten", self.writer.buffered)
        await self.writer.sink.close()
        for worker in self.deliveries:
            await worker.channel.close()
        await self._engine.dispose()
        logger.info("fleet stopped")

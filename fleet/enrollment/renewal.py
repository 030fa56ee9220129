"""Renewing gateways' TLS client certificates before they expire, with no one visiting the village.

Every ``enrollment.gateway_cert_check_interval_s`` the fleet looks for gateways whose last certificate from its
gateway CA expires within ``enrollment.gateway_cert_renew_days`` and that are online and not revoked. For each,
at most :data:`BATCH` a round, it reissues the certificate for the same key (the key never leaves the gateway,
so there is nothing to ask it first) and sends it as a signed ``install_certificate`` command. The gateway
checks the certificate is for its own key and its own id and keeps it for its next connection to the broker
(:mod:`edge.certificate_install`); once it answered, the fleet records the new certificate and its expiry,
audited. A gateway that is offline, or does not answer by the command's deadline, is tried again next round;
so is every gateway after a fleet restart that came between the answer and the record (a second certificate
for the same key does no harm).
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record
from fleet.access.roles import Actor, Role
from fleet.commands.dispatcher import CommandDispatcher
from fleet.commands.store import OPEN, NewCommand
from fleet.db.engine import database_errors
from fleet.db.schema import CommandRow, CommandState, GatewayRow
from fleet.enrollment.certificates import GatewayCertificates, not_after_ms
from fleet.errors import TransientError
from protocol.messages import CommandName

logger = logging.getLogger(__name__)

RENEWAL_ACTOR: Final = Actor("fleet-certificate-renewal", Role.ADMIN)
BATCH: Final = 50
"""Certificates sent in one round: a county's gateways renewed at once would queue behind each other."""
COMMAND_TIMEOUT_S: Final = 120.0
_DAY_MS: Final = 86_400_000


@dataclass(slots=True)
class Renewals:
    """Since the process started."""

    sent: int = 0
    installed: int = 0
    failed: int = 0


class CertificateRenewal:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        certificates: GatewayCertificates,
        commands: CommandDispatcher,
        clock: Callable[[], int],
        *,
        renew_days: int,
        interval_s: float,
    ) -> None:
        self._sessions = sessions
        self._certificates = certificates
        self._commands = commands
        self._clock = clock
        self._renew_ms = renew_days * _DAY_MS
        self._interval_s = interval_s
        self.renewals = Renewals()

    async def run(self) -> None:
        while True:
            try:
                await self.renew_due()
            except TransientError as exc:
                logger.warning("certificate renewal postponed: %s", exc)
            await asyncio.sleep(self._interval_s)

    async def renew_due(self) -> list[str]:
        """Renew the certificates due now; the gateways that installed theirs."""
        due = await self._due()
        if not due:
            return []
        logger.info("renewing the TLS certificates of %d gateways: %s", len(due), ", ".join(g.id for g in due[:10]))
        outcomes = await asyncio.gather(*(self._renew(gateway) for gateway in due))
        return [gateway.id for gateway, installed in zip(due, outcomes, strict=True) if installed]

    async def _due(self) -> list[GatewayRow]:
        pending = select(CommandRow.gateway_id).where(
            CommandRow.name == CommandName.INSTALL_CERTIFICATE.value, CommandRow.state.in_(OPEN)
        )
        query = (
            select(GatewayRow)
            .where(
                GatewayRow.tls_cert_not_after_ms < self._clock() + self._renew_ms,
                GatewayRow.tls_cert_pem.is_not(None),
                GatewayRow.revoked_ms.is_(None),
                GatewayRow.online.is_(True),
                GatewayRow.id.not_in(pending),
            )
            .order_by(GatewayRow.tls_cert_not_after_ms)
            .limit(BATCH)
        )
        with database_errors("find certificates to renew"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def _renew(self, gateway: GatewayRow) -> bool:
        assert gateway.tls_cert_pem is not None
        try:
            renewed = await asyncio.to_thread(self._certificates.reissue, gateway.tls_cert_pem, gateway.id)
        except ValueError as exc:
            self.renewals.failed += 1
            logger.error("cannot renew the certificate of gateway %s: %s (re-enroll it)", gateway.id, exc)
            return False
        command = NewCommand(
            gateway_id=gateway.id,
            village_id=gateway.village_id,
            name=CommandName.INSTALL_CERTIFICATE,
            args={},
            reason="certificate renewal",
            timeout_s=COMMAND_TIMEOUT_S,
            argument=renewed.encode("ascii"),
        )
        try:
            sent = await self._commands.send(RENEWAL_ACTOR, command)
            self.renewals.sent += 1
            outcome = await self._commands.outcome(sent.request_id, COMMAND_TIMEOUT_S)
            if outcome.state == CommandState.SUCCEEDED:
                await self._record(gateway.id, renewed)
        except TransientError as exc:
            self.renewals.failed += 1
            logger.warning("certificate renewal of gateway %s postponed: %s", gateway.id, exc)
            return False
        if outcome.state != CommandState.SUCCEEDED:
            self.renewals.failed += 1
            logger.warning(
                "gateway %s did not install its renewed certificate (%s: %s); trying again later",
                gateway.id, outcome.state, outcome.error,
            )  # fmt: skip
            return False
        self.renewals.installed += 1
        return True

    async def _record(self, gateway_id: str, certificate_pem: str) -> None:
        now = self._clock()
        with database_errors(f"record the renewed certificate of gateway {gateway_id}"):
            async with self._sessions.begin() as session:
                row = await session.get(GatewayRow, gateway_id)
                if row is None:  # removed meanwhile
                    return
                before = {"tls_cert_not_after_ms": row.tls_cert_not_after_ms}
                row.tls_cert_pem = certificate_pem
                row.tls_cert_not_after_ms = not_after_ms(certificate_pem)
                after = {"tls_cert_not_after_ms": row.tls_cert_not_after_ms}
                change = Change("gateway.renew_certificate", "gateway", gateway_id, before, after)
                record(session, RENEWAL_ACTOR, change, now)
        logger.info("gateway %s installed its renewed certificate", gateway_id)

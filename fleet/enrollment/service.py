"""Enrollment: a gateway trades a single-use token for its identity, broker credentials and initial config.

One enrollment is one database transaction: the token is claimed (first, see
:meth:`~fleet.enrollment.tokens.EnrollmentTokenStore.claim`), the gateway's row created or updated with
its public key, the broker told its new password, and the audit entries added; the transaction commits
only once the broker took the credentials. So a token is used up only by an enrollment that happened, and
a broker failure leaves the token usable (the technician tries again). If the commit itself fails after
the broker took the password, the gateway's broker password has changed with nobody holding it: the next
attempt with the same token sets a new one.

A token bound to an existing gateway re-enrolls it: same id and history, the new key, a new password;
the old password stops working at once (the broker closes its sessions), and a revocation is lifted (a
stolen gateway is revoked, then its replacement enrolled). Revoking a gateway disables its broker login
and closes its session; restoring enables it again with the password it had.

The initial config and the fleet's config-signing public key come from the config push module through
two injected callables, so this module does not depend on it.
"""

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record, snapshot
from fleet.access.roles import Actor, Role
from fleet.broker_access import BrokerAccess
from fleet.db.engine import database_errors
from fleet.db.schema import EnrollmentTokenRow, GatewayRow, VillageRow
from fleet.enrollment.broker import BrokerProvisioner, DynsecProvisioner, broker_errors
from fleet.enrollment.certificates import GatewayCertificates, not_after_ms
from fleet.enrollment.tokens import EnrollmentTokenStore, IssuedEnrollmentToken, public
from fleet.errors import (
    BrokerAccessNotFoundError,
    ConflictError,
    EnrollmentBrokerError,
    EnrollmentSettingsError,
    InvalidRequestError,
    NotFoundError,
)
from fleet.releases.keys import release_keys_pem, trusted_release_keys
from fleet.settings import FleetSettings, GatewayBrokerSettings
from protocol.config_signing import load_public_key, public_key_pem
from protocol.enrollment import BrokerGrant, EnrollmentGrant, EnrollmentRequest
from protocol.errors import SigningKeyError
from protocol.gateway_config import GatewayConfig

logger = logging.getLogger(__name__)

InitialConfig = Callable[[str, str], Awaitable[GatewayConfig | None]]
"""The config a gateway (village id, gateway id; a new gateway's row does not exist yet) runs until the
fleet pushes one."""
SigningPublicKey = Callable[[], str | None]
"""The fleet's config-signing public key (PEM), or None when it signs nothing."""


async def no_initial_config(_village_id: str, _gateway_id: str) -> GatewayConfig | None:
    """For a fleet that pushes no configs: gateways run their settings' config until one is pushed."""
    return None


def no_signing_public_key() -> str | None:
    """For a fleet that signs no configs (development only: production gateways need the key)."""
    return None


NO_BROKER_NOTICE = "development fleet: no broker credentials were provisioned (enrollment.dynsec_* unset)"
_GENERATED_ID_VILLAGE_CHARS = 48


@dataclass(frozen=True, slots=True)
class GatewayBrokerAddress:
    """The broker as gateways reach it, with the CA they verify it against."""

    host: str
    port: int
    tls: bool
    ca_pem: str | None

    @classmethod
    def from_settings(cls, settings: GatewayBrokerSettings) -> Self:
        """Reads the CA file now, so a wrong path stops the fleet at start, not a technician in a village."""
        ca_pem = None
        if settings.ca_file is not None:
            try:
                ca_pem = Path(settings.ca_file).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                message = f"cannot read enrollment.broker.ca_file {settings.ca_file}: {exc}"
                raise EnrollmentSettingsError(message) from exc
            if "-----BEGIN CERTIFICATE-----" not in ca_pem:
                raise EnrollmentSettingsError(f"enrollment.broker.ca_file {settings.ca_file} holds no PEM certificate")
        return cls(settings.host, settings.port, settings.tls or ca_pem is not None, ca_pem)


class EnrollmentService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        broker_address: GatewayBrokerAddress,
        provisioner: BrokerProvisioner | None,
        *,
        development: bool,
        initial_config: InitialConfig,
        signing_public_key: SigningPublicKey,
        default_ttl_s: int = 1800,
        public_url: str | None = None,
        certificates: GatewayCertificates | None = None,
        release_keys_pem: str | None = None,
    ) -> None:
        """``certificates``: the gateway CA that issues gateways' TLS client certificates (None: none issued);
        ``release_keys_pem``: the release keys gateways are told to trust (None: no updates)."""
        self._sessions = sessions
        self.certificates = certificates
        self._clock = clock
        self.tokens = EnrollmentTokenStore(sessions, clock)
        self._broker_address = broker_address
        self._provisioner = provisioner
        self._development = development
        self._initial_config = initial_config
        self._signing_public_key = signing_public_key
        self.default_ttl_s = default_ttl_s
        self._release_keys_pem = release_keys_pem
        self.public_url = public_url
        """The fleet's URL as gateways reach it, for enrollment codes; None if not configured."""

    @classmethod
    def from_settings(
        cls,
        settings: FleetSettings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        *,
        initial_config: InitialConfig,
        signing_public_key: SigningPublicKey,
    ) -> Self:
        """Provisions on the broker in ``settings.broker`` as ``enrollment.dynsec_username``, when set."""
        enrollment = settings.enrollment
        return cls(
            sessions,
            clock,
            GatewayBrokerAddress.from_settings(enrollment.broker),
            DynsecProvisioner.from_settings(settings),
            development=settings.environment == "development",
            initial_config=initial_config,
            signing_public_key=signing_public_key,
            default_ttl_s=enrollment.token_ttl_s,
            public_url=str(enrollment.public_url) if enrollment.public_url is not None else None,
            certificates=(
                GatewayCertificates.from_files(
                    enrollment.gateway_ca_cert_file, enrollment.gateway_ca_key_file, enrollment.gateway_cert_days, clock
                )
                if enrollment.gateway_ca_cert_file is not None and enrollment.gateway_ca_key_file is not None
                else None
            ),
            release_keys_pem=release_keys_pem(trusted_release_keys(settings.releases.trusted_keys_file)),
        )

    async def issue_token(
        self, actor: Actor, village_id: str, gateway_id: str | None = None, ttl_s: int | None = None
    ) -> IssuedEnrollmentToken:
        self._require_provisioning()
        return await self.tokens.issue(actor, village_id, gateway_id, ttl_s or self.default_ttl_s)

    async def enroll(self, request: EnrollmentRequest) -> EnrollmentGrant:
        """Redeem ``request.token``: raises :class:`~fleet.errors.EnrollmentTokenError` (401) for a token
        that is unknown, used, expired or revoked, whoever asks first or at the same time."""
        self._require_provisioning()
        # On a worker thread: anyone may call this, and the event loop carries every panic alert.
        key_pem, key_sha256 = await asyncio.to_thread(_public_key, request.public_key_pem)
        token = await self.tokens.usable(request.token)  # a look, to know the gateway id before the transaction
        gateway_id = token.gateway_id or _new_gateway_id(token.village_id)
        # Asked before the transaction, which on SQLite holds the database's write lock.
        config = await self._initial_config(token.village_id, gateway_id)
        signing_key = self._signing_public_key()
        password = secrets.token_urlsafe(32) if self._provisioner is not None else None
        client_id = f"{gateway_id}-{secrets.token_hex(8)}" if password is not None else None
        certificate = None
        if self.certificates is not None and request.tls_csr_pem is not None:  # signing: off the event loop
            certificate = await asyncio.to_thread(self.certificates.issue, request.tls_csr_pem, gateway_id)
        now = self._clock()
        with database_errors(f"enroll gateway {gateway_id}"):
            async with self._sessions.begin() as session:
                claimed = await self.tokens.claim(session, request.token)
                actor = Actor(f"enrollment-token-{claimed.id[:8]}", Role.TECHNICIAN)
                gateway, replaced = await self._enrolled_gateway(session, claimed, gateway_id, now)
                await self._refuse_key_of_another_gateway(session, key_sha256, gateway_id)
                before = snapshot(gateway) if gateway in session else None
                gateway.public_key_pem = key_pem
                gateway.public_key_sha256 = key_sha256
                gateway.enrolled_ms = now
                gateway.enrolled_hostname = request.hostname
                gateway.agent_version = request.agent_version
                gateway.revoked_ms = None
                gateway.tls_cert_pem = certificate
                gateway.tls_cert_not_after_ms = not_after_ms(certificate) if certificate is not None else None
                session.add(gateway)
                token_before = public(claimed)
                claimed.enrolled_gateway_id = gateway_id
                await session.flush()
                action = "gateway.replace" if replaced else "gateway.enroll"
                record(session, actor, Change(action, "gateway", gateway_id, before, snapshot(gateway)), now)
                used = Change("enrollment_token.use", "enrollment_token", claimed.id, token_before, public(claimed))
                record(session, actor, used, now)
                if password is not None and client_id is not None:
                    await self._provision(token.village_id, gateway_id, password, client_id)
        logger.info(
            "gateway %s of %s %s from %s (key %s)",
            gateway_id,
            token.village_id,
            "re-enrolled" if replaced else "enrolled",
            request.hostname,
            key_sha256[:16],
        )
        address = self._broker_address
        return EnrollmentGrant(
            gateway_id=gateway_id,
            village_id=token.village_id,
            replaced=replaced,
            broker=BrokerGrant(
                host=address.host,
                port=address.port,
                tls=address.tls,
                ca_pem=address.ca_pem,
                username=gateway_id if password is not None else None,
                password=password,
                client_id=client_id,
                client_cert_pem=certificate,
            ),
            config_signing_key_pem=signing_key,
            release_keys_pem=self._release_keys_pem,
            config=config,
            notices=[NO_BROKER_NOTICE] if password is None else [],
        )

    async def revoke_gateway(self, actor: Actor, gateway_id: str) -> GatewayRow:
        """Refuse the gateway's broker logins from now on and close its session (until :meth:`restore_gateway`)."""
        return await self._set_revoked(actor, gateway_id, revoke=True)

    async def restore_gateway(self, actor: Actor, gateway_id: str) -> GatewayRow:
        """Accept a revoked gateway's broker logins again, with the credentials it had."""
        return await self._set_revoked(actor, gateway_id, revoke=False)

    async def _set_revoked(self, actor: Actor, gateway_id: str, *, revoke: bool) -> GatewayRow:
        now = self._clock()
        verb = "revoke" if revoke else "restore"
        with database_errors(f"{verb} gateway {gateway_id}"):
            async with self._sessions.begin() as session:
                row = await session.get(GatewayRow, gateway_id)
                if row is None:
                    raise NotFoundError(f"no gateway {gateway_id!r}")
                before = snapshot(row)
                if (row.revoked_ms is None) == revoke:
                    row.revoked_ms = now if revoke else None
                    record(session, actor, Change(f"gateway.{verb}", "gateway", gateway_id, before, snapshot(row)), now)
                if self._provisioner is not None:
                    with broker_errors(f"{verb} gateway {gateway_id}"):
                        async with self._provisioner.access() as access:
                            await _revoke_or_restore(access, gateway_id, revoke=revoke)
        logger.info("%s %sd gateway %s", actor.name, verb, gateway_id)
        return row

    async def _enrolled_gateway(
        self, session: AsyncSession, token: EnrollmentTokenRow, gateway_id: str, now: int
    ) -> tuple[GatewayRow, bool]:
        """The gateway row to enroll (new, or the existing one of a bound token) and whether it was enrolled before."""
        if await session.get(VillageRow, token.village_id) is None:
            raise ConflictError(f"village {token.village_id!r} was removed after the token was issued")
        gateway = await session.get(GatewayRow, gateway_id)
        if gateway is None:
            return GatewayRow(id=gateway_id, village_id=token.village_id, first_seen_ms=now), False
        if token.gateway_id is None:  # a generated id that is taken: astronomically unlikely
            raise ConflictError(f"gateway id {gateway_id!r} is taken; try again")
        if gateway.village_id != token.village_id:
            raise ConflictError(
                f"gateway {gateway_id!r} moved to village {gateway.village_id!r} after the token was issued "
                f"for {token.village_id!r}: issue a new token"
            )
        return gateway, gateway.enrolled_ms is not None

    @staticmethod
    async def _refuse_key_of_another_gateway(session: AsyncSession, key_sha256: str, gateway_id: str) -> None:
        """One key, one gateway: a cloned SD card must not enroll as a second gateway with the same key."""
        other = await session.scalar(
            select(GatewayRow.id).where(GatewayRow.public_key_sha256 == key_sha256, GatewayRow.id != gateway_id)
        )
        if other is not None:
            raise ConflictError(f"this key is enrolled as gateway {other!r} already: enroll with a new key")

    async def _provision(self, village_id: str, gateway_id: str, password: str, client_id: str) -> None:
        assert self._provisioner is not None
        with broker_errors(f"provision gateway {gateway_id}"):
            async with self._provisioner.access() as access:
                if not await access.provision_gateway(village_id, gateway_id, password, client_id):
                    await access.set_gateway_login(gateway_id, password, client_id)  # closes the old key's sessions
                    await access.restore_gateway(gateway_id)

    def _require_provisioning(self) -> None:
        if self._provisioner is None and not self._development:
            raise EnrollmentBrokerError(
                "this fleet cannot provision broker credentials: set enrollment.dynsec_username and "
                "enrollment.dynsec_password (only a development fleet enrolls without them)"
            )


async def _revoke_or_restore(access: BrokerAccess, gateway_id: str, *, revoke: bool) -> None:
    try:
        if revoke:
            await access.revoke_gateway(gateway_id)
        else:
            await access.restore_gateway(gateway_id)
    except BrokerAccessNotFoundError:  # never enrolled through the broker: it has no login to refuse or accept
        logger.info("the broker has no client for gateway %s: nothing to change there", gateway_id)


def _public_key(pem: str) -> tuple[str, str]:
    """The gateway's Ed25519 public key as a normalised PEM block and the SHA-256 of its raw bytes."""
    try:
        key = load_public_key(pem)
    except SigningKeyError as exc:
        raise InvalidRequestError(f"public_key_pem: {exc}") from exc
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public_key_pem(key), hashlib.sha256(raw).hexdigest()


def _new_gateway_id(village_id: str) -> str:
    """``gw-{village}-{6 hex digits}``: says where it stands, and unique enough to never be retried in practice."""
    return f"gw-{village_id[:_GENERATED_ID_VILLAGE_CHARS]}-{secrets.token_hex(3)}"

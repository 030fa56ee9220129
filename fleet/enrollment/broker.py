"""Broker provisioning as the dynamic security administrator: one control session per operation.

Enrollment, revocation, moving and removing a gateway are rare (a technician at a time), so a session is
opened for each and closed after, rather than kept open and supervised; a broker restart between two of
them then needs nothing. The same provisioner keeps a gateway's login in step with the inventory (it is
the inventory's :class:`~fleet.sites.inventory.GatewayAccess`) and prepares the broker at the fleet's start.

The broker's refusals are translated here into the API's answers (:func:`broker_errors`): a username held
by something else is a conflict (409); the administrator refused, or a command refused, is the fleet's
problem (503, nothing was changed); a broker that does not answer is transient (503) already.
"""

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Protocol, Self

from fleet.broker_access import BrokerAccess, DynsecControl
from fleet.errors import (
    BrokerAccessConflictError,
    BrokerAccessRefusedError,
    BrokerRefusedError,
    ConflictError,
    EnrollmentBrokerError,
)
from fleet.mqtt.client import broker_tls_context
from fleet.settings import FleetSettings

logger = logging.getLogger(__name__)


class BrokerProvisioner(Protocol):
    """Opens :class:`BrokerAccess` for the length of one operation."""

    def access(self) -> contextlib.AbstractAsyncContextManager[BrokerAccess]: ...


class DynsecProvisioner:
    """:class:`BrokerAccess` through a :class:`DynsecControl` session as the dynamic security administrator."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str,
        password: str,
        timeout_s: float = 5.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        self._tls_context = tls_context

    @classmethod
    def from_settings(cls, settings: FleetSettings) -> Self | None:
        """As ``enrollment.dynsec_username`` on the broker in ``settings.broker``; None when that is unset
        (then the fleet manages no broker access: a development fleet)."""
        enrollment = settings.enrollment
        if enrollment.dynsec_username is None or enrollment.dynsec_password is None:
            return None
        return cls(
            settings.broker.host,
            settings.broker.port,
            username=enrollment.dynsec_username,
            password=enrollment.dynsec_password.get_secret_value(),
            timeout_s=enrollment.dynsec_timeout_s,
            tls_context=broker_tls_context(settings.broker),
        )

    @contextlib.asynccontextmanager
    async def access(self) -> AsyncIterator[BrokerAccess]:
        control = DynsecControl(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            timeout_s=self._timeout_s,
            tls_context=self._tls_context,
        )
        async with control:
            yield BrokerAccess(control)

    # --- the inventory's GatewayAccess ----------------------------------------------------------

    async def move_gateway(self, village_id: str, gateway_id: str) -> None:
        """Let the gateway's login use ``village_id``'s topics, and no others, from now on."""
        with broker_errors(f"move gateway {gateway_id} to village {village_id}"):
            async with self.access() as access:
                if not await access.move_gateway(village_id, gateway_id):
                    logger.info("the broker has no client for gateway %s: no login to move", gateway_id)

    async def remove_gateway(self, gateway_id: str) -> None:
        """Delete the gateway's login and role (closing its sessions); nothing if it has none."""
        with broker_errors(f"remove gateway {gateway_id}"):
            async with self.access() as access:
                if not await access.delete_gateway(gateway_id):
                    logger.info("the broker has no client for gateway %s: no login to delete", gateway_id)


@contextlib.contextmanager
def broker_errors(what: str) -> Iterator[None]:
    """The broker's refusals while doing ``what`` as the API's answers (see the module's docstring)."""
    try:
        yield
    except BrokerAccessConflictError as exc:
        raise ConflictError(f"cannot {what}: {exc}") from exc
    except (BrokerRefusedError, BrokerAccessRefusedError) as exc:
        raise EnrollmentBrokerError(f"cannot {what} on the broker: {exc}") from exc

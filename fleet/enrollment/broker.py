"""Broker provisioning for enrollment: one dynamic security control session per operation.

Enrollment and revocation are rare (a technician at a time), so a session is opened for each and closed
after, rather than kept open and supervised; a broker restart between two enrollments then needs nothing.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from fleet.broker_access import BrokerAccess, DynsecControl


class BrokerProvisioner(Protocol):
    """Opens :class:`BrokerAccess` for the length of one operation."""

    def access(self) -> contextlib.AbstractAsyncContextManager[BrokerAccess]: ...


class DynsecProvisioner:
    """:class:`BrokerAccess` through a :class:`DynsecControl` session as the dynamic security administrator."""

    def __init__(self, host: str, port: int, *, username: str, password: str, timeout_s: float = 5.0) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._timeout_s = timeout_s

    @contextlib.asynccontextmanager
    async def access(self) -> AsyncIterator[BrokerAccess]:
        control = DynsecControl(
            self._host, self._port, username=self._username, password=self._password, timeout_s=self._timeout_s
        )
        async with control:
            yield BrokerAccess(control)

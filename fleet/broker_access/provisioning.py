"""The broker-side operations of provisioning: gateway clients and roles, the fleet's own client.

A gateway logs in with username = its gateway id and holds one role, ``outpost-gateway-{id}``, whose
ACLs are :func:`~fleet.broker_access.policy.gateway_acls`. Operations are idempotent where a retry after
a lost answer must succeed: provisioning an existing gateway (with its role) or deleting a missing one
is not an error. Operations on an existing gateway first check that the username really is that
gateway's client (it holds the gateway's role), so a gateway id can never touch the administrator,
the fleet's client or anything else that shares the broker's user namespace.
"""

import logging
from collections.abc import Sequence
from typing import Final

from fleet.broker_access import commands
from fleet.broker_access.acls import DENY_ALL, Acl
from fleet.broker_access.commands import Command
from fleet.broker_access.control import DynsecControl
from fleet.broker_access.policy import (
    DOWNLINK_ROLE,
    FLEET_ROLE,
    QUARANTINE_PRIORITY,
    QUARANTINE_ROLE_PREFIX,
    downlink_acls,
    fleet_acls,
    gateway_acls,
    gateway_role,
    ingest_acls,
    quarantine_acls,
    quarantine_role,
)
from fleet.broker_access.responses import (
    NOT_FOUND_ERRORS,
    BrokerClient,
    CommandResponse,
    raise_for_errors,
    refusal,
)
from fleet.errors import BrokerAccessConflictError, BrokerAccessNotFoundError

logger = logging.getLogger(__name__)

_ROLE_EXISTS: Final = "Role already exists"
_CLIENT_EXISTS: Final = "Client already exists"


def ensure_role_commands(rolename: str, acls: Sequence[Acl]) -> list[Command]:
    """Create the role, or, if it exists, give it exactly these ACLs: ``createRole`` then ``modifyRole``
    (which keeps clients connected; their next checks use the new ACLs)."""
    return [commands.create_role(rolename, acls), commands.modify_role(rolename, acls)]


class BrokerAccess:
    """Provisioning on the broker through a :class:`DynsecControl` session the caller opened.

    Raises :class:`~fleet.errors.BrokerAccessRefusedError` (or its not-found / conflict subclasses) when
    the plugin refuses, :class:`~fleet.errors.BrokerControlUnavailableError` when it does not answer.
    """

    def __init__(self, control: DynsecControl) -> None:
        self._control = control

    async def deny_by_default(self) -> None:
        """Deny every publish, delivery, subscription and unsubscription that no role's ACL grants."""
        await self._run([commands.set_default_acl_access(DENY_ALL)])

    async def ensure_fleet_client(
        self, username: str, password: str, *, share_group: str | None = None, receive_only: bool = False
    ) -> bool:
        """Make sure the fleet service and its ingest workers can log in as ``username`` with the fleet's
        role (its ACLs are rewritten either way: :func:`~fleet.broker_access.policy.ingest_acls` with the shared
        subscriptions of ``share_group`` when ``receive_only``, else :func:`~fleet.broker_access.policy.fleet_acls`,
        the downlink's too).

        Returns True if the client was created, False if it existed with the fleet's role, in which case
        its password is left as it is (changing it disconnects the running service). Raises
        :class:`~fleet.errors.BrokerAccessConflictError` if ``username`` belongs to another client.
        """
        acls = ingest_acls(share_group) if receive_only else fleet_acls(share_group)
        return await self._ensure_client(username, password, FLEET_ROLE, acls, "Outpost fleet ingest")

    async def ensure_downlink_client(self, username: str, password: str) -> bool:
        """Make sure the fleet's downlink publisher can log in as ``username`` with the downlink role, the only
        one that may publish to gateways (:func:`~fleet.broker_access.policy.downlink_acls`). Like
        :meth:`ensure_fleet_client` otherwise."""
        return await self._ensure_client(username, password, DOWNLINK_ROLE, downlink_acls(), "Outpost fleet downlink")

    async def ensure_gateway_role(self, village_id: str, gateway_id: str) -> None:
        """Create the gateway's role, or rewrite its ACLs (e.g. after the gateway moved village)."""
        batch = ensure_role_commands(gateway_role(gateway_id), gateway_acls(village_id, gateway_id))
        created, modified = await self._control.execute(batch)
        _allow(batch[0], created, _ROLE_EXISTS)
        raise_for_errors(batch[1:], [modified])

    async def move_gateway(self, village_id: str, gateway_id: str) -> bool:
        """The gateway moved to ``village_id``: from now on its login may use that village's topics only.

        Its role's ACLs are rewritten; connected sessions stay, and their next publish or subscription is
        checked against the new ACLs. Returns False, changing nothing, if the gateway has no client (it was
        never enrolled: enrolling it later provisions the village it is in then). Raises
        :class:`~fleet.errors.BrokerAccessConflictError` if the username belongs to another client.
        """
        try:
            await self._require_gateway(gateway_id)
        except BrokerAccessNotFoundError:
            return False
        await self.ensure_gateway_role(village_id, gateway_id)
        return True

    async def provision_gateway(self, village_id: str, gateway_id: str, password: str, client_id: str) -> bool:
        """Let ``gateway_id`` of ``village_id`` log in as ``gateway_id`` with ``password``, connecting as the MQTT
        client ``client_id`` only (an unguessable id: no other login can take over its session).

        Returns True if the client was created, False if it existed with the gateway's role; then its
        login and enabled state are left alone (:meth:`set_gateway_login` re-enrols it,
        :meth:`restore_gateway` lifts a revocation). The role's ACLs are rewritten either way. Raises
        :class:`~fleet.errors.BrokerAccessConflictError` if the username belongs to another client.
        """
        role, acls = gateway_role(gateway_id), gateway_acls(village_id, gateway_id)
        text = f"Outpost gateway of {village_id}"
        return await self._ensure_client(gateway_id, password, role, acls, text, client_id=client_id)

    async def set_gateway_login(self, gateway_id: str, password: str, client_id: str) -> None:
        """Re-enrol: from now on only ``password`` with the client id ``client_id`` logs the gateway in; its
        connected sessions are closed."""
        await self._require_gateway(gateway_id)
        await self._run(
            [commands.bind_client_id(gateway_id, client_id), commands.set_client_password(gateway_id, password)]
        )

    async def revoke_gateway(self, gateway_id: str) -> None:
        """Refuse the gateway's logins (until :meth:`restore_gateway`) and close its connected sessions."""
        await self._require_gateway(gateway_id)
        await self._run([commands.disable_client(gateway_id)])

    async def restore_gateway(self, gateway_id: str) -> None:
        """Accept a revoked gateway's logins again (with the password it had)."""
        await self._require_gateway(gateway_id)
        await self._run([commands.enable_client(gateway_id)])

    async def delete_gateway(self, gateway_id: str) -> bool:
        """Delete the gateway's client (closing its sessions) and role; False if there was no such client."""
        client = await self.get_client(gateway_id)
        role = gateway_role(gateway_id)
        if client is not None and role not in client.roles:
            raise _not_a_gateway(gateway_id, client, "deleteClient")
        batch = [commands.delete_client(gateway_id), commands.delete_role(role)]
        responses = await self._control.execute(batch)
        for command, response in zip(batch, responses, strict=True):
            if not response.ok and response.error not in NOT_FOUND_ERRORS:
                raise refusal(command, response)
        return client is not None

    async def quarantine(self, gateway_id: str, topics: list[str]) -> None:
        """Deny ``gateway_id`` publishing on ``topics`` (exactly these, replacing an earlier quarantine's) until
        :meth:`release`: a role of its own, checked before its gateway role. Its sessions stay connected and
        everything else it may do is untouched, so revoking or restoring it meanwhile is unaffected."""
        client = await self._require_gateway(gateway_id)
        role = quarantine_role(gateway_id)
        batch = ensure_role_commands(role, quarantine_acls(topics))
        if role not in client.roles:
            batch.append(commands.add_client_role(gateway_id, role, priority=QUARANTINE_PRIORITY))
        created, *rest = await self._control.execute(batch)
        _allow(batch[0], created, _ROLE_EXISTS)
        raise_for_errors(batch[1:], rest)

    async def release(self, gateway_id: str) -> bool:
        """End ``gateway_id``'s quarantine (deleting the role takes it off the client); False if it had none."""
        command = commands.delete_role(quarantine_role(gateway_id))
        [response] = await self._control.execute([command])
        if response.error in NOT_FOUND_ERRORS:
            return False
        raise_for_errors([command], [response])
        return True

    async def quarantined(self) -> list[str]:
        """The gateways quarantined now (a quarantine role exists for them)."""
        command = commands.list_roles()
        [response] = await self._control.execute([command])
        raise_for_errors([command], [response])
        roles = response.data.get("roles")
        names = [name for name in (roles if isinstance(roles, list) else []) if isinstance(name, str)]
        return [name.removeprefix(QUARANTINE_ROLE_PREFIX) for name in names if name.startswith(QUARANTINE_ROLE_PREFIX)]

    async def get_client(self, username: str) -> BrokerClient | None:
        """The client logging in as ``username``, or None."""
        command = commands.get_client(username)
        [response] = await self._control.execute([command])
        if response.error in NOT_FOUND_ERRORS:
            return None
        raise_for_errors([command], [response])
        return BrokerClient.from_response(response)

    async def list_clients(self) -> list[str]:
        """Every client's username."""
        command = commands.list_clients()
        [response] = await self._control.execute([command])
        raise_for_errors([command], [response])
        clients = response.data.get("clients")
        return [name for name in (clients if isinstance(clients, list) else []) if isinstance(name, str)]

    async def _ensure_client(
        self,
        username: str,
        password: str,
        role: str,
        acls: Sequence[Acl],
        textname: str,
        *,
        client_id: str | None = None,
    ) -> bool:
        create = commands.create_client(username, password, roles=[role], textname=textname, client_id=client_id)
        batch = [*ensure_role_commands(role, acls), create]
        responses = await self._control.execute(batch)
        role_created, role_set, client_created = responses
        _allow(batch[0], role_created, _ROLE_EXISTS)
        raise_for_errors(batch[1:2], [role_set])
        if client_created.ok:
            logger.info("broker client %r created with role %r", username, role)
            return True
        _allow(create, client_created, _CLIENT_EXISTS)
        client = await self.get_client(username)
        if client is None:  # deleted between the two commands
            raise refusal(create, client_created)
        if role not in client.roles:
            if role_created.ok:  # made for nobody: take it back
                await self._control.execute([commands.delete_role(role)])
            raise BrokerAccessConflictError(
                f"broker client {username!r} exists without role {role!r} (it has {', '.join(client.roles) or 'none'})",
                command=create.name,
                error=_CLIENT_EXISTS,
            )
        return False

    async def _require_gateway(self, gateway_id: str) -> BrokerClient:
        client = await self.get_client(gateway_id)
        if client is None:
            raise BrokerAccessNotFoundError(
                f"the broker has no client for gateway {gateway_id!r}", command="getClient", error="Client not found"
            )
        if gateway_role(gateway_id) not in client.roles:
            raise _not_a_gateway(gateway_id, client, "getClient")
        return client

    async def _run(self, batch: list[Command]) -> list[CommandResponse]:
        responses = await self._control.execute(batch)
        raise_for_errors(batch, responses)
        return responses


def _allow(command: Command, response: CommandResponse, expected_error: str) -> None:
    """Accept ``response`` if it succeeded or failed only with ``expected_error``; raise otherwise."""
    if not response.ok and response.error != expected_error:
        raise refusal(command, response)


def _not_a_gateway(gateway_id: str, client: BrokerClient, command: str) -> BrokerAccessConflictError:
    return BrokerAccessConflictError(
        f"broker client {gateway_id!r} is not a gateway's (roles: {', '.join(client.roles) or 'none'})",
        command=command,
        error="not a gateway client",
    )

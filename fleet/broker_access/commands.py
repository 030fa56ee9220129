"""Building the dynamic security plugin's commands and the control message that carries a batch of them.

Each command is one JSON object of the plugin's API (``{"command": "createClient", "username": …}``).
The fleet publishes a batch as ``{"commands": [...]}`` on :data:`CONTROL_TOPIC`, each command with its
own ``correlationData``; the plugin executes them in order and answers all of them in one message on
:data:`RESPONSE_TOPIC`, echoing each ``correlationData``.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from fleet.broker_access.acls import Acl, DefaultAccessType

# Mosquitto's own API, not Outpost topics (those are built by protocol.topics): fixed strings.
CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = "$CONTROL/dynamic-security/v1/response"


@dataclass(frozen=True, slots=True)
class Command:
    """One command; ``subject`` (the username or role it is about) names it in messages. The arguments,
    which may hold a password, stay out of its ``repr``."""

    name: str
    subject: str = ""
    arguments: Mapping[str, object] = field(default_factory=dict, repr=False)

    def to_json(self, correlation_data: str) -> dict[str, object]:
        return {"command": self.name, **self.arguments, "correlationData": correlation_data}

    def __str__(self) -> str:
        return f"{self.name} {self.subject}" if self.subject else self.name


def encode_batch(commands: Sequence[Command], correlation_ids: Sequence[str]) -> bytes:
    """The control message carrying ``commands``, the i-th tagged with the i-th correlation id."""
    if len(commands) != len(correlation_ids):
        raise ValueError(f"{len(commands)} commands but {len(correlation_ids)} correlation ids")
    batch = [command.to_json(correlation) for command, correlation in zip(commands, correlation_ids, strict=True)]
    return json.dumps({"commands": batch}, separators=(",", ":")).encode()


def _roles(rolenames: Iterable[str]) -> list[dict[str, object]]:
    return [{"rolename": rolename} for rolename in rolenames]


def create_client(
    username: str,
    password: str,
    *,
    roles: Iterable[str] = (),
    textname: str | None = None,
    client_id: str | None = None,
) -> Command:
    """A new client that logs in as ``username`` with ``password`` and holds ``roles`` (which must exist); with
    ``client_id``, only a connection with that MQTT client id may use the login."""
    arguments: dict[str, object] = {"username": username, "password": password, "roles": _roles(roles)}
    if textname is not None:
        arguments["textname"] = textname
    if client_id is not None:
        arguments["clientid"] = client_id
    return Command("createClient", username, arguments)


def bind_client_id(username: str, client_id: str) -> Command:
    """From now on the client's login works only with the MQTT client id ``client_id``."""
    return Command("modifyClient", username, {"username": username, "clientid": client_id})


def delete_client(username: str) -> Command:
    """Delete a client; the broker disconnects its sessions."""
    return Command("deleteClient", username, {"username": username})


def disable_client(username: str) -> Command:
    """Refuse the client's logins from now on; the broker disconnects its sessions."""
    return Command("disableClient", username, {"username": username})


def enable_client(username: str) -> Command:
    return Command("enableClient", username, {"username": username})


def set_client_password(username: str, password: str) -> Command:
    """Replace the client's password; the broker disconnects its sessions (they used the old one)."""
    return Command("setClientPassword", username, {"username": username, "password": password})


def get_client(username: str) -> Command:
    return Command("getClient", username, {"username": username})


def list_clients() -> Command:
    return Command("listClients", "", {"verbose": False, "count": -1, "offset": 0})


def add_client_role(username: str, rolename: str, *, priority: int | None = None) -> Command:
    arguments: dict[str, object] = {"username": username, "rolename": rolename}
    if priority is not None:
        arguments["priority"] = priority
    return Command("addClientRole", username, arguments)


def list_roles() -> Command:
    return Command("listRoles", "", {"verbose": False, "count": -1, "offset": 0})


def create_role(rolename: str, acls: Iterable[Acl] = (), *, textname: str | None = None) -> Command:
    arguments: dict[str, object] = {"rolename": rolename, "acls": [acl.to_json() for acl in acls]}
    if textname is not None:
        arguments["textname"] = textname
    return Command("createRole", rolename, arguments)


def modify_role(rolename: str, acls: Iterable[Acl]) -> Command:
    """Replace all of a role's ACLs (connected clients keep their sessions; new checks use the new ACLs)."""
    return Command("modifyRole", rolename, {"rolename": rolename, "acls": [acl.to_json() for acl in acls]})


def delete_role(rolename: str) -> Command:
    return Command("deleteRole", rolename, {"rolename": rolename})


def get_role(rolename: str) -> Command:
    return Command("getRole", rolename, {"rolename": rolename})


def add_role_acl(rolename: str, acl: Acl) -> Command:
    return Command("addRoleACL", rolename, {"rolename": rolename, **acl.to_json()})


def set_default_acl_access(access: Mapping[DefaultAccessType, bool]) -> Command:
    """Set what each kind of access defaults to when none of a client's ACLs matches."""
    acls = [{"acltype": acltype.value, "allow": allow} for acltype, allow in access.items()]
    return Command("setDefaultACLAccess", "", {"acls": acls})


def get_default_acl_access() -> Command:
    return Command("getDefaultACLAccess")

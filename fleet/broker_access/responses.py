"""Reading the plugin's answers, and translating a refused command into the fleet's exceptions."""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from fleet.broker_access.commands import Command
from fleet.errors import BrokerAccessConflictError, BrokerAccessNotFoundError, BrokerAccessRefusedError

logger = logging.getLogger(__name__)

# The plugin's error strings (Mosquitto 2.0, plugins/dynamic-security/*.c) that have a class of their own.
NOT_FOUND_ERRORS: Final = frozenset(
    {"Client not found", "Role not found", "Role does not exist", "Group not found", "ACL not found"}
)
CONFLICT_ERRORS: Final = frozenset(
    {"Client already exists", "Role already exists", "Group already exists", "ACL with this topic already exists"}
)


@dataclass(frozen=True, slots=True)
class CommandResponse:
    """The plugin's answer to one command: ``error`` is None when it succeeded; ``data`` holds what a
    ``get``/``list`` command returns."""

    command: str
    error: str | None = None
    data: Mapping[str, object] = field(default_factory=dict)
    correlation_data: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def decode_responses(payload: bytes) -> list[CommandResponse]:
    """The answers in one response message; entries that are not objects with a ``command`` are skipped.

    Raises :class:`ValueError` if the message is not a JSON object with a ``responses`` list.
    """
    document = json.loads(payload)
    entries = document.get("responses") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a dynamic security response: no 'responses' list")
    responses = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
            logger.warning("skipping a malformed dynamic security response entry: %.200r", entry)
            continue
        error, data, correlation = entry.get("error"), entry.get("data"), entry.get("correlationData")
        responses.append(
            CommandResponse(
                command=entry["command"],
                error=error if isinstance(error, str) else None,
                data=data if isinstance(data, dict) else {},
                correlation_data=correlation if isinstance(correlation, str) else None,
            )
        )
    return responses


def refusal(command: Command, response: CommandResponse) -> BrokerAccessRefusedError:
    """The exception for a refused command: not found, conflict, or refused for another reason."""
    error = response.error or "unknown error"
    message = f"the broker refused {command}: {error}"
    if error in NOT_FOUND_ERRORS:
        return BrokerAccessNotFoundError(message, command=command.name, error=error)
    if error in CONFLICT_ERRORS:
        return BrokerAccessConflictError(message, command=command.name, error=error)
    return BrokerAccessRefusedError(message, command=command.name, error=error)


def raise_for_errors(commands: Sequence[Command], responses: Sequence[CommandResponse]) -> None:
    """Raise the :func:`refusal` of the first refused command, if any."""
    for command, response in zip(commands, responses, strict=True):
        if not response.ok:
            raise refusal(command, response)


@dataclass(frozen=True, slots=True)
class BrokerClient:
    """A client as ``getClient`` describes it (never its password)."""

    username: str
    roles: tuple[str, ...]
    disabled: bool

    @classmethod
    def from_response(cls, response: CommandResponse) -> "BrokerClient":
        client = response.data.get("client")
        if not isinstance(client, dict) or not isinstance(client.get("username"), str):
            raise ValueError(f"getClient answered without a client: {dict(response.data)!r:.200}")
        roles = client.get("roles")
        rolenames = tuple(
            role["rolename"]
            for role in (roles if isinstance(roles, list) else [])
            if isinstance(role, dict) and isinstance(role.get("rolename"), str)
        )
        return cls(username=client["username"], roles=rolenames, disabled=client.get("disabled") is True)

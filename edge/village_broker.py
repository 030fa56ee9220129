"""The logins and ACLs of the village's own broker (Mosquitto on the gateway), as the gateway manages them.

Every client of the village broker has a login of its own, and may use only its own topics:

- each sensor node logs in as its node id and may publish only its own status, heartbeat, events and config
  results (``outpost-node/v1/{its id}/…``) and read only its own settings (``…/config``): a node cannot
  speak for another node, and nobody but the gateway can set a node's settings;
- the gateway (``outpost-gateway``) reads every node and publishes their settings, and publishes the alerts for
  the village centre (``outpost-local/v1/…``);
- the village centre's screen (``outpost-centre``) reads those alerts and nothing else.

Anonymous clients are refused. Passwords are random (256 bits), made once per login and kept in
``logins.json`` (0600) beside the files written for Mosquitto: ``passwd`` (PBKDF2-SHA512 hashes, Mosquitto 2's
``$7$`` format), ``acl`` and ``outpost.conf`` (the listener, those files, and the packet-size bound). A node
removed from the gateway's settings loses its login at the next writing; a node added gets one.
"""

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from edge.durable_file import replace_durably
from edge.errors import EdgeConfigError
from protocol.codec import MAX_PACKET_BYTES
from protocol.identifiers import is_identifier
from protocol.node import NODE_INBOUND_CHANNELS, NODE_PREFIX, NodeChannel
from protocol.village_centre import VILLAGE_CENTRE_PREFIX

GATEWAY_USER: Final = "outpost-gateway"
CENTRE_USER: Final = "outpost-centre"
LOGINS_NAME: Final = "logins.json"
_PBKDF2_ITERATIONS: Final = 101  # what mosquitto_passwd writes
_SALT_BYTES: Final = 12


@dataclass(frozen=True)
class VillageLogins:
    """The village broker's logins: user name -> password (node logins are named by their node ids)."""

    gateway: str = field(repr=False)
    centre: str = field(repr=False)
    nodes: Mapping[str, str] = field(repr=False)

    @classmethod
    def kept_for(cls, directory: Path, node_ids: Iterable[str]) -> "VillageLogins":
        """The logins kept in ``directory`` for these nodes: existing passwords kept, new ones made, logins of
        nodes no longer listed dropped; written back (0600) before it returns. Raises EdgeConfigError."""
        wanted = sorted(set(node_ids))
        for node_id in wanted:
            if not is_identifier(node_id) or node_id in (GATEWAY_USER, CENTRE_USER):
                raise EdgeConfigError(f"node id {node_id!r} cannot be a village broker login")
        kept = _read(directory / LOGINS_NAME)
        nodes = {node_id: kept.get(f"node:{node_id}") or _new_password() for node_id in wanted}
        logins = cls(kept.get("gateway") or _new_password(), kept.get("centre") or _new_password(), nodes)
        text = json.dumps({"gateway": logins.gateway, "centre": logins.centre, "nodes": nodes}, indent=2)
        try:
            replace_durably(directory / LOGINS_NAME, text + "\n", 0o600)
        except OSError as exc:
            raise EdgeConfigError(f"cannot keep the village broker's logins in {directory}: {exc}") from exc
        return logins

    def passwords(self) -> dict[str, str]:
        return {GATEWAY_USER: self.gateway, CENTRE_USER: self.centre, **self.nodes}


def password_file(logins: VillageLogins) -> str:
    """Mosquitto's ``password_file``: one ``user:$7$…`` line per login, hashed as ``mosquitto_passwd`` does."""
    return "".join(f"{user}:{password_hash(password)}\n" for user, password in sorted(logins.passwords().items()))


def password_hash(password: str, salt: bytes | None = None) -> str:
    """Mosquitto 2's ``$7$`` hash: PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte salt, both in base64."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, _PBKDF2_ITERATIONS)
    return f"$7${_PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_file() -> str:
    """Mosquitto's ``acl_file``: the gateway's and the centre's rights, and every node's own topics (``%u``)."""
    node_uplink = [f"{NODE_PREFIX}/+/{channel.value}" for channel in NODE_INBOUND_CHANNELS]
    lines = [
        f"user {GATEWAY_USER}",
        *(f"topic read {topic}" for topic in node_uplink),
        f"topic write {NODE_PREFIX}/+/{NodeChannel.CONFIG.value}",
        f"topic readwrite {VILLAGE_CENTRE_PREFIX}/#",
        "",
        f"user {CENTRE_USER}",
        f"topic read {VILLAGE_CENTRE_PREFIX}/#",
        "",
        "# every login, by its user name: a node publishes its own topics and reads its own settings only",
        *(f"pattern write {NODE_PREFIX}/%u/{channel.value}" for channel in NODE_INBOUND_CHANNELS),
        f"pattern read {NODE_PREFIX}/%u/{NodeChannel.CONFIG.value}",
    ]
    return "\n".join(lines) + "\n"


def broker_config(directory: Path, port: int, bind: str = "0.0.0.0") -> str:  # noqa: S104 - the village LAN
    """An ``include_dir`` file for the village's Mosquitto: the listener, the logins and ACLs, the packet bound."""
    return "\n".join([
        "# Written by `outpost gateway village-broker`: every client logs in and uses only its own topics.",
        "per_listener_settings false",
        f"listener {port} {bind}",
        "allow_anonymous false",
        f"password_file {directory.resolve() / 'passwd'}",
        f"acl_file {directory.resolve() / 'acl'}",
        f"max_packet_size {MAX_PACKET_BYTES}",
        "",
    ])  # fmt: skip


def write_broker_files(directory: Path, logins: VillageLogins, port: int, bind: str = "0.0.0.0") -> None:  # noqa: S104
    """Write ``passwd`` (0600), ``acl`` and ``outpost.conf`` into ``directory``. Raises EdgeConfigError."""
    try:
        replace_durably(directory / "passwd", password_file(logins), 0o600)
        replace_durably(directory / "acl", acl_file(), 0o644)
        replace_durably(directory / "outpost.conf", broker_config(directory, port, bind), 0o644)
    except OSError as exc:
        raise EdgeConfigError(f"cannot write the village broker's files in {directory}: {exc}") from exc


def _new_password() -> str:
    return secrets.token_urlsafe(32)


def _read(path: Path) -> dict[str, str]:
    """The kept passwords: ``gateway``, ``centre`` and ``node:{id}``; none when the file does not exist yet."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise EdgeConfigError(f"cannot read the village broker's logins {path}: {exc}") from exc
    nodes = kept.get("nodes") if isinstance(kept, dict) else None
    if not isinstance(nodes, dict):
        raise EdgeConfigError(f"the village broker's logins {path} are damaged")
    passwords = {f"node:{node_id}": password for node_id, password in nodes.items() if isinstance(password, str)}
    return passwords | {key: kept[key] for key in ("gateway", "centre") if isinstance(kept.get(key), str)}

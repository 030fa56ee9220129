"""A village's own Mosquitto as a gateway runs it: every client logs in and uses only its own topics.

:class:`VillageMosquitto` is a test or demo :class:`~simulators.infra.mosquitto.MosquittoBroker` with the
logins and ACLs that ``outpost gateway village-broker`` writes (:mod:`edge.village_broker`): anonymous
clients refused, each sensor node logged in as its node id and held to its own topics, the gateway and the
village centre each with a login of their own. :func:`local_access` says how a gateway and its nodes reach
a village broker, with logins when it has them (an embedded demo broker has none).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from edge.settings import BrokerSettings
from edge.village_broker import GATEWAY_USER, VillageLogins, write_broker_files
from simulators.infra.broker import Broker
from simulators.infra.mosquitto import MosquittoBroker


class VillageMosquitto(MosquittoBroker):
    """Mosquitto with a login for the gateway, the village centre and each of ``node_ids``."""

    def __init__(self, node_ids: Iterable[str], **options: Any) -> None:
        super().__init__(allow_anonymous=False, **options)
        self._login_files = self._directory / "village-broker"
        self._login_files.mkdir()
        self.logins = VillageLogins.kept_for(self._login_files, node_ids)
        write_broker_files(self._login_files, self.logins, self._port)

    def gateway_settings(self, **options: Any) -> BrokerSettings:
        """How the gateway logs in here (``options``: more :class:`BrokerSettings` fields, e.g. keepalive_s)."""
        return BrokerSettings(
            host=self.host, port=self.port, username=GATEWAY_USER, password=SecretStr(self.logins.gateway), **options
        )

    def _config_lines(self) -> list[str]:
        return [
            *super()._config_lines(),
            f"password_file {self._login_files / 'passwd'}",
            f"acl_file {self._login_files / 'acl'}",
        ]


@dataclass(frozen=True)
class LocalAccess:
    """How a village's gateway and nodes reach its broker: the gateway's settings, each node's password."""

    gateway: BrokerSettings
    node_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)

    def node_login(self, node_id: str) -> dict[str, object]:
        """The firmware settings that log ``node_id`` in (none for a broker without logins)."""
        password = self.node_passwords.get(node_id)
        return {} if password is None else {"broker_user": node_id, "broker_password": password}


def local_access(broker: Broker) -> LocalAccess:
    """``broker``'s access: its logins if it is a :class:`VillageMosquitto`, else anonymous."""
    if isinstance(broker, VillageMosquitto):
        return LocalAccess(broker.gateway_settings(), broker.logins.nodes)
    return LocalAccess(BrokerSettings(host=broker.host, port=broker.port))

"""Per-client MQTT credentials and ACLs on the fleet's broker, through Mosquitto's dynamic security plugin.

- :mod:`~fleet.broker_access.acls`: ACL types, one ACL, the deny-all default;
- :mod:`~fleet.broker_access.policy`: which role may do what (one per gateway, one for the fleet);
- :mod:`~fleet.broker_access.commands`: the plugin's JSON commands and the control message;
- :mod:`~fleet.broker_access.responses`: its answers, and refusals as :mod:`fleet.errors` exceptions;
- :mod:`~fleet.broker_access.correlation`: answers matched to waiting commands by ``correlationData``;
- :mod:`~fleet.broker_access.control`: :class:`DynsecControl`, the control session over aiomqtt;
- :mod:`~fleet.broker_access.provisioning`: :class:`BrokerAccess`, what provisioning needs.

Typical use::

    async with DynsecControl(host, port, username="admin", password=admin_password) as control:
        access = BrokerAccess(control)
        await access.deny_by_default()
        await access.ensure_fleet_client("outpost-fleet", fleet_password)
        await access.provision_gateway("shiqiao", "gw-shiqiao", gateway_password, gateway_client_id)
"""

from fleet.broker_access.acls import DENY_ALL, Acl, AclType, DefaultAccessType
from fleet.broker_access.control import DynsecControl
from fleet.broker_access.policy import (
    DOWNLINK_ROLE,
    FLEET_ROLE,
    downlink_acls,
    fleet_acls,
    gateway_acls,
    gateway_role,
    ingest_acls,
)
from fleet.broker_access.provisioning import BrokerAccess
from fleet.broker_access.responses import BrokerClient, CommandResponse

__all__ = [
    "DENY_ALL",
    "DOWNLINK_ROLE",
    "FLEET_ROLE",
    "Acl",
    "AclType",
    "BrokerAccess",
    "BrokerClient",
    "CommandResponse",
    "DefaultAccessType",
    "DynsecControl",
    "downlink_acls",
    "fleet_acls",
    "gateway_acls",
    "gateway_role",
    "ingest_acls",
]

"""Who may do what on the fleet's broker: one role per gateway, one for the fleet's ingest, one for its downlink.

A gateway's role allows, as concrete topics (no wildcard), only what ``protocol.topics`` says that
gateway of that village uses: publishing on its uplink channels, and subscribing to and receiving its
downlink channels. The village is part of every topic, so a gateway can neither speak for another
gateway nor for another village, and a gateway that moves village gets its role rewritten. The fleet's
ingest role subscribes to and receives every uplink channel and publishes nothing; the downlink role
publishes every gateway's downlink channels and the village centres' notifications and receives nothing.
A fleet with one login for both (development) gets both in its role.
"""

from typing import Final

from fleet.broker_access.acls import Acl, AclType
from protocol.identifiers import is_identifier
from protocol.topics import (
    fleet_publish_filters,
    gateway_publish_topics,
    gateway_receive_topics,
    shared_filter,
    uplink_filters,
    village_notify_filter,
)

GATEWAY_ROLE_PREFIX: Final = "outpost-gateway-"
QUARANTINE_ROLE_PREFIX: Final = "outpost-quarantine-"
QUARANTINE_PRIORITY: Final = 1000
"""A quarantine role's priority on its client, over the gateway role's (the plugin checks higher first)."""
FLEET_ROLE: Final = "outpost-fleet"
"""The ingest login's role (with the downlink's ACLs too when the fleet has no separate downlink login)."""
DOWNLINK_ROLE: Final = "outpost-fleet-downlink"


def gateway_role(gateway_id: str) -> str:
    """The name of the role that holds ``gateway_id``'s ACLs."""
    if not is_identifier(gateway_id):
        raise ValueError(f"gateway id {gateway_id!r} is not a valid identifier")
    return f"{GATEWAY_ROLE_PREFIX}{gateway_id}"


def quarantine_role(gateway_id: str) -> str:
    """The role that, while ``gateway_id`` floods, denies it the topics it floods."""
    if not is_identifier(gateway_id):
        raise ValueError(f"gateway id {gateway_id!r} is not a valid identifier")
    return f"{QUARANTINE_ROLE_PREFIX}{gateway_id}"


def quarantine_acls(topics: list[str]) -> list[Acl]:
    """Deny publishing on ``topics``: the broker drops such a message (an MQTT 5 client is told: reason code
    135) before it is queued for the fleet."""
    return [Acl(AclType.PUBLISH_CLIENT_SEND, topic, allow=False) for topic in topics]


def gateway_acls(village_id: str, gateway_id: str) -> list[Acl]:
    """Everything ``gateway_id`` of ``village_id`` may do; everything else is denied by default."""
    receive = gateway_receive_topics(village_id, gateway_id)
    return [
        *Acl.allowing(AclType.PUBLISH_CLIENT_SEND, gateway_publish_topics(village_id, gateway_id)),
        *Acl.allowing(AclType.PUBLISH_CLIENT_RECEIVE, receive),
        *Acl.allowing(AclType.SUBSCRIBE_LITERAL, receive),
        *Acl.allowing(AclType.UNSUBSCRIBE_LITERAL, receive),
    ]


def ingest_acls(share_group: str | None = None) -> list[Acl]:
    """What the fleet's ingest (``fleet run`` and its workers) may do: read any gateway's uplink, alone or as
    members of the shared subscription group ``share_group``; publish nothing.

    Subscriptions are patterns, so the fleet may also subscribe to a narrower filter (one village's, or
    one channel's of one gateway). Mosquitto 2.0 checks a shared subscription against its whole filter,
    ``$share/{group}/…``, so the group's filters are granted by name: only the configured group, so a
    leaked fleet credential cannot join another group and split its load. Delivery is checked against
    the message's topic, which the uplink patterns cover either way.
    """
    uplink = uplink_filters()
    subscriptions = uplink + ([shared_filter(share_group, f) for f in uplink] if share_group else [])
    return [
        *Acl.allowing(AclType.PUBLISH_CLIENT_RECEIVE, uplink),
        *Acl.allowing(AclType.SUBSCRIBE_PATTERN, subscriptions),
        *Acl.allowing(AclType.UNSUBSCRIBE_PATTERN, subscriptions),
    ]


def downlink_acls() -> list[Acl]:
    """What the fleet's downlink publisher may do: publish any gateway's downlink and any village centre's
    alert notifications; subscribe to nothing."""
    return Acl.allowing(AclType.PUBLISH_CLIENT_SEND, [*fleet_publish_filters(), village_notify_filter()])


def fleet_acls(share_group: str | None = None) -> list[Acl]:
    """Ingest and downlink in one role: a fleet that logs in once for both (development)."""
    return [*downlink_acls(), *ingest_acls(share_group)]

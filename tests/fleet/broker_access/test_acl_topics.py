"""What a gateway and the fleet may do on the broker: concrete topics for a gateway, patterns for the fleet."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from fleet.broker_access.acls import Acl, AclType
from fleet.broker_access.policy import FLEET_ROLE, fleet_acls, gateway_acls, gateway_role
from protocol.errors import TopicError
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.topics import (
    Channel,
    Direction,
    fleet_publish_filters,
    gateway_filters,
    gateway_publish_topics,
    gateway_receive_topics,
    gateway_topic,
    shared_filter,
    uplink_filters,
)

identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
UPLINK = [channel for channel in Channel if channel.direction is Direction.UPLINK]
DOWNLINK = [channel for channel in Channel if channel.direction is Direction.DOWNLINK]


def _topics(acls: list[Acl], acltype: AclType) -> list[str]:
    assert all(acl.allow for acl in acls), "Outpost grants; it never needs a deny ACL"
    return [acl.topic for acl in acls if acl.acltype is acltype]


def test_a_gateway_publishes_on_exactly_its_uplink_topics() -> None:
    assert gateway_publish_topics("v1", "gw-a") == [
        "outpost/v1/v1/gw-a/presence",
        "outpost/v1/v1/gw-a/heartbeat",
        "outpost/v1/v1/gw-a/telemetry",
        "outpost/v1/v1/gw-a/event",
        "outpost/v1/v1/gw-a/alert",
        "outpost/v1/v1/gw-a/config/reported",
        "outpost/v1/v1/gw-a/command/response",
    ]


def test_a_gateway_receives_exactly_its_downlink_topics_which_are_its_subscriptions() -> None:
    assert gateway_receive_topics("v1", "gw-a") == ["outpost/v1/v1/gw-a/config/desired", "outpost/v1/v1/gw-a/command"]
    assert gateway_receive_topics("v1", "gw-a") == gateway_filters("v1", "gw-a")


def test_the_fleet_publishes_every_gateways_downlink() -> None:
    assert fleet_publish_filters() == ["outpost/v1/+/+/config/desired", "outpost/v1/+/+/command"]


@pytest.mark.parametrize(("village_id", "gateway_id"), [("V1", "gw-a"), ("v1", "+"), ("v1", "gw/a"), ("v1", "#")])
def test_acl_topics_refuse_ids_that_are_not_identifiers(village_id: str, gateway_id: str) -> None:
    with pytest.raises(TopicError):
        gateway_publish_topics(village_id, gateway_id)
    with pytest.raises(TopicError):
        gateway_receive_topics(village_id, gateway_id)


def test_a_gateways_role_grants_its_topics_literally_and_nothing_else() -> None:
    acls = gateway_acls("v1", "gw-a")

    assert _topics(acls, AclType.PUBLISH_CLIENT_SEND) == gateway_publish_topics("v1", "gw-a")
    assert _topics(acls, AclType.PUBLISH_CLIENT_RECEIVE) == gateway_receive_topics("v1", "gw-a")
    assert _topics(acls, AclType.SUBSCRIBE_LITERAL) == gateway_filters("v1", "gw-a")
    assert _topics(acls, AclType.UNSUBSCRIBE_LITERAL) == gateway_filters("v1", "gw-a")
    assert not _topics(acls, AclType.SUBSCRIBE_PATTERN)
    assert not _topics(acls, AclType.UNSUBSCRIBE_PATTERN)
    assert not any("+" in acl.topic or "#" in acl.topic for acl in acls)


@given(village=identifiers, gateway=identifiers, other_village=identifiers, other_gateway=identifiers)
def test_no_gateway_acl_matches_another_gateways_or_another_villages_topic(
    village: str, gateway: str, other_village: str, other_gateway: str
) -> None:
    if (village, gateway) == (other_village, other_gateway):
        return
    acls = gateway_acls(village, gateway)
    for channel in Channel:
        foreign = gateway_topic(other_village, other_gateway, channel)
        assert not any(topic_matches_sub(acl.topic, foreign) for acl in acls), (acls, foreign)


@given(village=identifiers, gateway=identifiers, channel=st.sampled_from(Channel))
def test_the_fleet_reads_every_uplink_topic_and_writes_every_downlink_topic(
    village: str, gateway: str, channel: Channel
) -> None:
    acls = fleet_acls()
    topic = gateway_topic(village, gateway, channel)
    sends = _topics(acls, AclType.PUBLISH_CLIENT_SEND)
    receives = _topics(acls, AclType.PUBLISH_CLIENT_RECEIVE)

    assert any(topic_matches_sub(acl, topic) for acl in sends) == (channel in DOWNLINK)
    assert any(topic_matches_sub(acl, topic) for acl in receives) == (channel in UPLINK)


def test_the_fleet_subscribes_by_pattern_to_the_uplink_filters() -> None:
    acls = fleet_acls()

    assert _topics(acls, AclType.SUBSCRIBE_PATTERN) == uplink_filters()
    assert _topics(acls, AclType.UNSUBSCRIBE_PATTERN) == uplink_filters()
    assert not _topics(acls, AclType.SUBSCRIBE_LITERAL)


def test_ingest_workers_may_join_the_configured_share_group_only() -> None:
    acls = fleet_acls("outpost-ingest")
    subscriptions = _topics(acls, AclType.SUBSCRIBE_PATTERN)

    for topic_filter in uplink_filters():
        assert shared_filter("outpost-ingest", topic_filter) in subscriptions
        assert topic_filter in subscriptions
    assert not any(sub.startswith("$share/+") or "/other/" in sub for sub in subscriptions)
    assert _topics(acls, AclType.PUBLISH_CLIENT_RECEIVE) == uplink_filters()


def test_role_names() -> None:
    assert gateway_role("gw-a") == "outpost-gateway-gw-a"
    assert FLEET_ROLE == "outpost-fleet"
    with pytest.raises(ValueError, match="not a valid identifier"):
        gateway_role("gw/a")


def test_an_acl_as_json() -> None:
    assert Acl(AclType.SUBSCRIBE_PATTERN, "a/+").to_json() == {
        "acltype": "subscribePattern",
        "topic": "a/+",
        "allow": True,
    }
    assert Acl(AclType.PUBLISH_CLIENT_SEND, "a/b", allow=False, priority=5).to_json() == {
        "acltype": "publishClientSend",
        "topic": "a/b",
        "allow": False,
        "priority": 5,
    }

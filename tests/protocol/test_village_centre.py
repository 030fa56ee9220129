"""The village centre's local topics: each gateway publishes its alerts on its own topic, and the centre's
filter hears every gateway of its village and no other traffic."""

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import TopicError
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.node import NodeChannel, node_topic
from protocol.topics import Channel, gateway_topic
from protocol.village_centre import village_centre_filter, village_centre_topic

identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)


def test_a_gateways_alerts_go_to_its_village_under_the_local_prefix() -> None:
    assert village_centre_topic("lakeside", "gw-01") == "outpost-local/v1/lakeside/gw-01/alert"


def test_the_village_centre_subscribes_to_every_gateway_of_its_village() -> None:
    assert village_centre_filter("lakeside") == "outpost-local/v1/lakeside/+/alert"


@given(village_id=identifiers, gateway_id=identifiers)
def test_the_village_centre_hears_every_gateway_of_its_own_village(village_id: str, gateway_id: str) -> None:
    topic = aiomqtt.Topic(village_centre_topic(village_id, gateway_id))

    assert topic.matches(village_centre_filter(village_id))


@given(village_id=identifiers, other_village=identifiers, gateway_id=identifiers)
def test_the_village_centre_does_not_hear_another_villages_gateways(
    village_id: str, other_village: str, gateway_id: str
) -> None:
    topic = aiomqtt.Topic(village_centre_topic(other_village, gateway_id))

    assert topic.matches(village_centre_filter(village_id)) is (other_village == village_id)


@pytest.mark.parametrize("channel", list(Channel))
def test_the_village_centre_hears_none_of_the_fleet_traffic(channel: Channel) -> None:
    topic = aiomqtt.Topic(gateway_topic("lakeside", "gw-01", channel))

    assert not topic.matches(village_centre_filter("lakeside"))


@pytest.mark.parametrize("channel", list(NodeChannel))
def test_the_village_centre_hears_none_of_the_sensor_nodes(channel: NodeChannel) -> None:
    assert not aiomqtt.Topic(node_topic("lakeside", channel)).matches(village_centre_filter("lakeside"))


@pytest.mark.parametrize("bad", ["Lakeside", "lake side", "lake/side", "+", "#", "", "-lakeside", "v" * 65])
def test_no_topic_is_built_for_an_invalid_village_id(bad: str) -> None:
    with pytest.raises(TopicError, match=r"village id .* is not a valid identifier"):
        village_centre_topic(bad, "gw-01")
    with pytest.raises(TopicError, match=r"village id .* is not a valid identifier"):
        village_centre_filter(bad)


@pytest.mark.parametrize("bad", ["GW-01", "gw 01", "gw/01", "+", "#", "", "g" * 65])
def test_no_topic_is_built_for_an_invalid_gateway_id(bad: str) -> None:
    with pytest.raises(TopicError, match=r"gateway id .* is not a valid identifier"):
        village_centre_topic("lakeside", bad)

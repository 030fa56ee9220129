"""The topic scheme: every topic built can be parsed back, and nothing else parses."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError, TopicError
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.topics import (
    Channel,
    Direction,
    GatewayTopic,
    fleet_filter,
    gateway_filters,
    gateway_topic,
    shared_filter,
    uplink_filters,
)

identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)

UPLINK = {
    Channel.PRESENCE,
    Channel.HEARTBEAT,
    Channel.TELEMETRY,
    Channel.EVENT,
    Channel.ALERT,
    Channel.CONFIG_REPORTED,
    Channel.COMMAND_RESPONSE,
}
DOWNLINK = {Channel.CONFIG_DESIRED, Channel.COMMAND}
RETAINED = {Channel.PRESENCE, Channel.CONFIG_DESIRED, Channel.CONFIG_REPORTED}


@given(village_id=identifiers, gateway_id=identifiers, channel=st.sampled_from(Channel))
def test_every_built_topic_parses_back_to_its_parts(village_id: str, gateway_id: str, channel: Channel) -> None:
    topic = gateway_topic(village_id, gateway_id, channel)

    parsed = GatewayTopic.parse(topic)

    assert parsed == GatewayTopic(village_id, gateway_id, channel)
    assert str(parsed) == topic


@pytest.mark.parametrize("channel", list(Channel))
def test_topic_is_prefix_village_gateway_then_channel_suffix(channel: Channel) -> None:
    assert gateway_topic("lakeside", "gw-01", channel) == f"outpost/v1/lakeside/gw-01/{channel.value}"


@pytest.mark.parametrize(
    "topic",
    [
        "outpost/v2/lakeside/gw-01/alert",
        "other/v1/lakeside/gw-01/alert",
        "Outpost/v1/lakeside/gw-01/alert",
        "/outpost/v1/lakeside/gw-01/alert",
        "v1/lakeside/gw-01/alert",
    ],
    ids=["wrong-version", "wrong-root", "upper-case-root", "leading-slash", "no-root"],
)
def test_parse_refuses_a_wrong_prefix(topic: str) -> None:
    with pytest.raises(TopicError, match="not an outpost/v1 gateway topic"):
        GatewayTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    ["outpost/v1/lakeside/alert", "outpost/v1/lakeside", "outpost/v1", "outpost", ""],
    ids=["no-gateway", "village-only", "prefix-only", "root-only", "empty"],
)
def test_parse_refuses_missing_levels(topic: str) -> None:
    with pytest.raises(TopicError):
        GatewayTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "outpost/v1/lakeside/gw-01/alert/extra",
        "outpost/v1/lakeside/gw-01/config/desired/extra",
        "outpost/v1/lakeside/gw-01/alert/",
        "outpost/v1/lakeside/gw-01/config",
        "outpost/v1/lakeside/gw-01/command/request",
        "outpost/v1/lakeside/gw-01/alerts",
        "outpost/v1/lakeside/gw-01/ALERT",
        "outpost/v1/lakeside/gw-01/",
    ],
    ids=[
        "extra-level",
        "extra-level-two-part",
        "trailing-slash",
        "half-channel",
        "wrong-sub",
        "plural",
        "upper",
        "empty",
    ],
)
def test_parse_refuses_unknown_channels_and_extra_levels(topic: str) -> None:
    with pytest.raises(TopicError, match="unknown channel"):
        GatewayTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "outpost/v1/+/gw-01/alert",
        "outpost/v1/lakeside/+/alert",
        "outpost/v1/lakeside/gw-01/#",
        "outpost/v1/lakeside/gw-01/+",
        "outpost/v1/#",
        "outpost/v1/+/+/alert",
    ],
)
def test_parse_refuses_wildcards(topic: str) -> None:
    with pytest.raises(TopicError):
        GatewayTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "outpost/v1/Lakeside/gw-01/alert",
        "outpost/v1/lakeside/GW-01/alert",
        "outpost/v1//gw-01/alert",
        "outpost/v1/lakeside//alert",
        "outpost/v1/-lakeside/gw-01/alert",
        "outpost/v1/lakeside/_gw/alert",
        "outpost/v1/lake side/gw-01/alert",
        "outpost/v1/lakeside/gw.01/alert",
        f"outpost/v1/{'a' * 65}/gw-01/alert",
        "outpost/v1/lakeside/gw-01\n/alert",
    ],
    ids=[
        "upper-village",
        "upper-gateway",
        "empty-village",
        "empty-gateway",
        "dash-first",
        "underscore-first",
        "space",
        "dot",
        "too-long",
        "newline",
    ],
)
def test_parse_refuses_invalid_ids(topic: str) -> None:
    with pytest.raises(TopicError, match="not a valid identifier"):
        GatewayTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    ["$SYS/broker/uptime", "$share/fleet/outpost/v1/lakeside/gw-01/alert", "outpost/v1/$lake/gw-01/alert"],
)
def test_parse_refuses_dollar_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        GatewayTopic.parse(topic)


def test_ids_at_the_length_limit_are_accepted() -> None:
    longest = "a" * 64

    assert GatewayTopic.parse(f"outpost/v1/{longest}/{longest}/alert").village_id == longest


@pytest.mark.parametrize(
    ("village_id", "gateway_id"), [("+", "gw-01"), ("lakeside", "#"), ("$sys", "gw-01"), ("a/b", "gw-01"), ("", "g")]
)
def test_building_a_topic_from_invalid_ids_is_refused(village_id: str, gateway_id: str) -> None:
    with pytest.raises(TopicError):
        gateway_topic(village_id, gateway_id, Channel.ALERT)


def test_topic_errors_are_protocol_and_value_errors() -> None:
    with pytest.raises(ProtocolError):
        GatewayTopic.parse("nope")
    with pytest.raises(ValueError, match="not an outpost/v1 gateway topic"):
        GatewayTopic.parse("nope")


@pytest.mark.parametrize("channel", list(Channel))
def test_channel_direction_and_retain_flag(channel: Channel) -> None:
    expected_direction = Direction.DOWNLINK if channel in DOWNLINK else Direction.UPLINK

    assert channel.direction is expected_direction
    assert channel.retained is (channel in RETAINED)


def test_fleet_filter_for_one_channel_of_every_gateway() -> None:
    assert fleet_filter(Channel.ALERT) == "outpost/v1/+/+/alert"
    assert fleet_filter(Channel.CONFIG_REPORTED) == "outpost/v1/+/+/config/reported"


def test_fleet_filter_without_channel_covers_every_channel() -> None:
    assert fleet_filter() == "outpost/v1/+/+/#"


def test_fleet_filter_for_one_village() -> None:
    assert fleet_filter(Channel.HEARTBEAT, village_id="lakeside") == "outpost/v1/lakeside/+/heartbeat"
    assert fleet_filter(village_id="lakeside") == "outpost/v1/lakeside/+/#"


@pytest.mark.parametrize("village_id", ["+", "#", "Lakeside", "", "a/b"])
def test_fleet_filter_refuses_an_invalid_village(village_id: str) -> None:
    with pytest.raises(TopicError):
        fleet_filter(Channel.ALERT, village_id=village_id)


def test_uplink_filters_cover_exactly_the_uplink_channels() -> None:
    filters = uplink_filters()

    assert sorted(filters) == sorted(f"outpost/v1/+/+/{channel.value}" for channel in UPLINK)
    assert len(filters) == len(set(filters))


def test_gateway_filters_are_its_own_downlink_topics_only() -> None:
    filters = gateway_filters("lakeside", "gw-01")

    assert sorted(filters) == ["outpost/v1/lakeside/gw-01/command", "outpost/v1/lakeside/gw-01/config/desired"]
    assert all("+" not in f and "#" not in f for f in filters)


def test_gateway_filters_refuse_invalid_ids() -> None:
    with pytest.raises(TopicError):
        gateway_filters("lakeside", "+")


def test_shared_filter_prefixes_the_share_group() -> None:
    assert shared_filter("fleet", fleet_filter(Channel.ALERT)) == "$share/fleet/outpost/v1/+/+/alert"


@pytest.mark.parametrize("group", ["", "Fleet", "a/b", "+", "#", "$share"])
def test_shared_filter_refuses_an_invalid_group(group: str) -> None:
    with pytest.raises(TopicError, match="share group"):
        shared_filter(group, "outpost/v1/+/+/alert")

"""The dynamic security plugin's access-control vocabulary: ACL types, one ACL, default access.

A client may do what one of its roles' ACLs allows; what no ACL matches falls to the broker-wide default
for that kind of access (:data:`DENY_ALL`: Outpost grants everything explicitly).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class AclType(StrEnum):
    """What an ACL controls; the value is the plugin's ``acltype``."""

    PUBLISH_CLIENT_SEND = "publishClientSend"  # the client publishes on a topic matching the ACL's filter
    PUBLISH_CLIENT_RECEIVE = "publishClientReceive"  # the broker delivers to the client a message on such a topic
    SUBSCRIBE_LITERAL = "subscribeLiteral"  # the client subscribes with exactly this filter string
    SUBSCRIBE_PATTERN = "subscribePattern"  # the client subscribes with a filter the ACL's filter covers
    UNSUBSCRIBE_LITERAL = "unsubscribeLiteral"
    UNSUBSCRIBE_PATTERN = "unsubscribePattern"


class DefaultAccessType(StrEnum):
    """The kinds of access that have a broker-wide default, used when no ACL of a client's roles matches."""

    PUBLISH_CLIENT_SEND = "publishClientSend"
    PUBLISH_CLIENT_RECEIVE = "publishClientReceive"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


DENY_ALL: Final[Mapping[DefaultAccessType, bool]] = MappingProxyType(dict.fromkeys(DefaultAccessType, False))
"""Deny every kind of access no ACL grants (the plugin's own default lets anyone receive and unsubscribe)."""


@dataclass(frozen=True, slots=True)
class Acl:
    """One ACL of a role: allow (or deny) ``acltype`` on ``topic``; higher ``priority`` is checked first."""

    acltype: AclType
    topic: str
    allow: bool = True
    priority: int | None = None

    def to_json(self) -> dict[str, object]:
        acl: dict[str, object] = {"acltype": self.acltype.value, "topic": self.topic, "allow": self.allow}
        if self.priority is not None:
            acl["priority"] = self.priority
        return acl

    @classmethod
    def allowing(cls, acltype: AclType, topics: list[str]) -> list["Acl"]:
        """One allowing ACL of ``acltype`` per topic."""
        return [cls(acltype, topic) for topic in topics]

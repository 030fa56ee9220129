"""Where a gateway tells its own village's safety centre about alerts, on the village's local broker.

The village centre's console subscribes to :func:`village_centre_filter`; each message is an
:class:`~protocol.messages.Alert`, encoded as it is for the fleet. This path needs no uplink.
"""

from typing import Final

from protocol.errors import TopicError
from protocol.identifiers import is_identifier

VILLAGE_CENTRE_PREFIX: Final = "outpost-local/v1"


def _checked(kind: str, value: str) -> str:
    if not is_identifier(value):
        raise TopicError(f"{kind} {value!r} is not a valid identifier (a-z, 0-9, '-', '_'; max 64)")
    return value


def village_centre_topic(village_id: str, gateway_id: str) -> str:
    """The local topic on which ``gateway_id`` publishes its alerts to the village centre."""
    return f"{VILLAGE_CENTRE_PREFIX}/{_checked('village id', village_id)}/{_checked('gateway id', gateway_id)}/alert"


def village_centre_filter(village_id: str) -> str:
    """What the village centre subscribes to: the alerts of every gateway of its village."""
    return f"{VILLAGE_CENTRE_PREFIX}/{_checked('village id', village_id)}/+/alert"

"""Encoding messages to compact JSON bytes and decoding bytes back into typed messages.

:class:`Decoder` never raises on bad input: it returns a :class:`Rejection` with a reason,
counts it, and logs it (throttled, truncated) so a message loop can carry on.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, get_args

from pydantic import BaseModel, ValidationError

from protocol.config_model import ConfigModel
from protocol.errors import TopicError
from protocol.messages import MODEL_FOR_CHANNEL, Message
from protocol.topics import GatewayTopic

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_PACKET_BYTES: Final = DEFAULT_MAX_PAYLOAD_BYTES + 4096
"""The largest MQTT packet any Outpost broker takes or any Outpost MQTT 5 client accepts: the largest payload
plus room for the topic and properties. Brokers are configured with it (Mosquitto's ``max_packet_size``), so an
oversized publish is refused by the broker (the client is disconnected) before anyone buffers it whole."""
_DETAIL_CHARS: Final = 300
_LOG_FIRST_N: Final = 10
_LOG_EVERY_N: Final = 1000


class RejectReason(StrEnum):
    OVERSIZE = "oversize"
    BAD_TOPIC = "bad_topic"
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    INVALID_PAYLOAD = "invalid_payload"
    GATEWAY_MISMATCH = "gateway_mismatch"
    NODE_MISMATCH = "node_mismatch"


@dataclass(frozen=True, slots=True)
class Inbound:
    """A decoded message and the topic it arrived on."""

    topic: GatewayTopic
    message: Message


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused; ``topic`` and ``detail`` are truncated for logging."""

    reason: RejectReason
    topic: str
    detail: str


def _nests_lax_models(annotation: object) -> bool:
    """Whether ``annotation`` is, or contains, a :class:`ConfigModel` (lax in its own right)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if issubclass(annotation, ConfigModel):
            return True
        return any(_nests_lax_models(field.annotation) for field in annotation.model_fields.values())
    return any(_nests_lax_models(argument) for argument in get_args(annotation))


STRICT_BY_CALL: Final = frozenset(channel for channel, model in MODEL_FOR_CHANNEL.items() if _nests_lax_models(model))
"""Channels whose model nests lax config models: validated with ``strict=True`` passed in. Every other
model is strict by its own config, and passing ``strict=True`` anyway costs about a third more per
telemetry batch (measured with pydantic 2.14), so it is left out there."""


def encode(message: Message) -> bytes:
    """Compact JSON (no whitespace) for ``message``."""
    return message.__pydantic_serializer__.to_json(message)


def _classify(error: ValidationError) -> tuple[RejectReason, str]:
    """The rejection reason for a validation error, and a one-line summary of what was wrong."""
    details = error.errors(include_url=False, include_input=False, include_context=False)
    summary = "; ".join(f"{'.'.join(map(str, d['loc'])) or 'payload'}: {d['msg']}" for d in details[:5])
    if any(d["type"] == "json_invalid" for d in details):
        return RejectReason.MALFORMED_JSON, summary
    if any(d["loc"] == ("schema_version",) and d["type"] == "literal_error" for d in details):
        return RejectReason.UNKNOWN_SCHEMA_VERSION, summary
    return RejectReason.INVALID_PAYLOAD, summary


class RejectionTally:
    """Counts refused messages by reason and logs them, the first few and then every thousandth."""

    def __init__(self) -> None:
        self.counts: Counter[RejectReason] = Counter()

    def reject(self, reason: RejectReason, detail: str, *, topic: str) -> Rejection:
        self.counts[reason] += 1
        rejection = Rejection(reason, topic[:_DETAIL_CHARS], detail[:_DETAIL_CHARS])
        count = self.counts[reason]
        if count <= _LOG_FIRST_N or count % _LOG_EVERY_N == 0:
            logger.warning(
                "rejected message on %s: %s (%s; %d so far)", rejection.topic, reason, rejection.detail, count
            )
        return rejection

    def invalid(self, error: ValidationError, *, topic: str) -> Rejection:
        return self.reject(*_classify(error), topic=topic)


class Decoder:
    """Decodes inbound MQTT messages against the contract and keeps count of what it refused."""

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        self.max_payload_bytes = max_payload_bytes
        self._tally = RejectionTally()

    def decode(self, topic: str, payload: bytes) -> Inbound | Rejection:
        if len(payload) > self.max_payload_bytes:
            detail = f"{len(payload)} bytes > limit {self.max_payload_bytes}"
            return self._tally.reject(RejectReason.OVERSIZE, detail, topic=topic)
        try:
            parsed = GatewayTopic.parse(topic)
        except TopicError as exc:
            return self._tally.reject(RejectReason.BAD_TOPIC, str(exc), topic=topic)
        model = MODEL_FOR_CHANNEL[parsed.channel]
        try:
            if parsed.channel in STRICT_BY_CALL:
                message = model.model_validate_json(payload, strict=True)
            else:
                message = model.model_validate_json(payload)  # strict by the model's own config
        except ValidationError as exc:
            return self._tally.invalid(exc, topic=topic)
        if message.gateway_id != parsed.gateway_id:
            detail = f"payload names gateway {message.gateway_id!r}, topic names {parsed.gateway_id!r}"
            return self._tally.reject(RejectReason.GATEWAY_MISMATCH, detail, topic=topic)
        return Inbound(parsed, message)

    @property
    def rejections(self) -> Counter[RejectReason]:
        return self._tally.counts

    @property
    def rejected_total(self) -> int:
        return self._tally.counts.total()

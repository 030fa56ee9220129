"""Benchmark group ``contract``: what the wire contract's codec costs on the fleet's hot path.

``contract.telemetry_round_trip`` (points/s): :func:`protocol.codec.encode` of a telemetry batch,
then :meth:`protocol.codec.Decoder.decode` of those bytes on its topic, with a decoder configured
as the fleet runs it (default payload limit). Its baseline round-trips the same data as plain dicts
through ``json.dumps`` (compact, to bytes) and ``json.loads``: no validation, no models.
The batch has :data:`BATCH_POINTS` points because a 1,000-point batch with realistic ids is about
80 KiB, over the decoder's default 64 KiB payload limit, and would be refused as oversize.
Its goal is explained at :data:`ROUND_TRIP_GOAL`.

``contract.reject_malformed`` (messages/s): decode-only throughput over a cycle of broken messages,
one for each way :class:`~protocol.codec.Decoder` refuses input. No baseline and no goal: nothing
comparable exists, and no requirement sets a refusal rate.
"""

import json
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from uuid import UUID

from bench.harness import Figure, Profile, Workload, median_rate, median_rates, register_group
from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES, Decoder, Inbound, Rejection, RejectReason, encode
from protocol.messages import TelemetryBatch, TelemetryPoint
from protocol.topics import Channel, gateway_topic

logger = logging.getLogger(__name__)

VILLAGE_ID: Final = "riverside"
GATEWAY_ID: Final = "gw-bench-01"
BATCH_POINTS: Final = 500
ROUND_TRIP_GOAL: Final[float | None] = 200_000.0
"""Twice the fleet's end-to-end ingest goal (100,000 points/s, issue 5), so that decoding on one core
is never what limits ingest on the shared 2-core machine."""

_METRICS: Final = ("temperature_c", "humidity_pct", "battery_v", "rssi_dbm", "water_level_cm")
_DEVICES: Final = 20
_SMALL_BATCH_POINTS: Final = 10
_START_MS: Final = 1_700_000_000_000
_SEED: Final = 20_240_601


def telemetry_batch(points: int, *, gateway_id: str = GATEWAY_ID, seed: int = _SEED) -> TelemetryBatch:
    """A deterministic batch of ``points`` readings from a handful of devices, one per second."""
    rng = random.Random(seed)
    readings = [
        TelemetryPoint(
            device_id=f"sensor-{index % _DEVICES:02d}",
            metric=_METRICS[index % len(_METRICS)],
            value=rng.uniform(-20.0, 80.0),
            ts=_START_MS + index * 1_000,
        )
        for index in range(points)
    ]
    return TelemetryBatch(
        gateway_id=gateway_id,
        seq=seed % 1_000,
        event_id=UUID(int=rng.getrandbits(128), version=4),
        ts=_START_MS + points * 1_000,
        points=readings,
    )


def malformed_messages() -> list[tuple[str, bytes, RejectReason]]:
    """One ``(topic, payload, expected reason)`` for each way the decoder refuses a message."""
    topic = gateway_topic(VILLAGE_ID, GATEWAY_ID, Channel.TELEMETRY)
    small = telemetry_batch(_SMALL_BATCH_POINTS)
    good = encode(small)
    as_dict = small.model_dump(mode="json")
    bad_point = {**as_dict["points"][-1], "metric": "Not A Metric!"}
    invalid = {**as_dict, "points": [*as_dict["points"][:-1], bad_point]}
    return [
        (topic, b"x" * (DEFAULT_MAX_PAYLOAD_BYTES + 1), RejectReason.OVERSIZE),
        # Deliberately not a valid topic: a real topic with one level too many.
        (topic + "/extra", good, RejectReason.BAD_TOPIC),
        (topic, good[:-9], RejectReason.MALFORMED_JSON),
        (topic, _dump({**as_dict, "schema_version": 2}), RejectReason.UNKNOWN_SCHEMA_VERSION),
        (topic, _dump(invalid), RejectReason.INVALID_PAYLOAD),
        (topic, encode(telemetry_batch(_SMALL_BATCH_POINTS, gateway_id="gw-elsewhere")), RejectReason.GATEWAY_MISMATCH),
    ]


def _dump(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


@contextmanager
def _log_records_discarded(name: str) -> Iterator[None]:
    """Let ``name``'s records be created and handled as usual, but discard them instead of printing."""
    target = logging.getLogger(name)
    handler = logging.NullHandler()
    propagate = target.propagate
    target.addHandler(handler)
    target.propagate = False
    try:
        yield
    finally:
        target.propagate = propagate
        target.removeHandler(handler)


def round_trip_workload(batch: TelemetryBatch) -> Workload:
    """Encode ``batch`` and decode it on its topic, checking the result once up front."""
    decoder = Decoder()
    topic = gateway_topic(VILLAGE_ID, batch.gateway_id, Channel.TELEMETRY)
    result = decoder.decode(topic, encode(batch))
    if not isinstance(result, Inbound) or result.message != batch:
        raise RuntimeError(f"the codec does not round-trip the benchmark batch: {result}")

    def run() -> object:
        return decoder.decode(topic, encode(batch))

    return run


def plain_json_workload(batch: TelemetryBatch) -> Workload:
    """Round-trip ``batch``'s data as plain dicts through the standard library's json."""
    data = batch.model_dump(mode="json")
    if json.loads(_dump(data)) != data:
        raise RuntimeError("plain json does not round-trip the benchmark batch")

    def run() -> object:
        return json.loads(json.dumps(data, separators=(",", ":")).encode())

    return run


def rejection_workload(messages: list[tuple[str, bytes, RejectReason]]) -> Workload:
    """Decode every message of ``messages`` once per call; each must be refused as expected."""
    decoder = Decoder()
    for topic, payload, reason in messages:
        result = decoder.decode(topic, payload)
        if not isinstance(result, Rejection) or result.reason is not reason:
            raise RuntimeError(f"expected a {reason} rejection, got {result}")
    pairs = [(topic, payload) for topic, payload, _ in messages]

    def run() -> object:
        return [decoder.decode(topic, payload) for topic, payload in pairs]

    return run


@register_group("contract", "codec round trip vs plain json, and malformed-message refusal rate")
def contract_figures(profile: Profile) -> list[Figure]:
    batch = telemetry_batch(BATCH_POINTS)
    codec_rate, json_rate = median_rates(
        [round_trip_workload(batch), plain_json_workload(batch)],
        items_per_call=[BATCH_POINTS, BATCH_POINTS],
        profile=profile,
    )
    messages = malformed_messages()
    with _log_records_discarded("protocol.codec"):
        reject_rate = median_rate(rejection_workload(messages), items_per_call=len(messages), profile=profile)
    logger.info("codec %.0f points/s, plain json %.0f points/s", codec_rate, json_rate)
    return [
        Figure.measured(
            "contract.telemetry_round_trip",
            codec_rate,
            "points/s",
            better="higher",
            runs=profile.runs,
            goal=ROUND_TRIP_GOAL,
            baseline=json_rate,
        ),
        Figure.measured(
            "contract.reject_malformed",
            reject_rate,
            "messages/s",
            better="higher",
            runs=profile.runs,
        ),
    ]

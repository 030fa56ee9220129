"""The telemetry batcher: measurements become batches of at most ``max_points``, in arrival order."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.adapters.base import Measured
from edge.envelope import EnvelopeStamper
from edge.sequence import SequenceCounter
from edge.telemetry import TelemetryBatcher
from protocol.bounds import MAX_EPOCH_MS
from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES, Decoder, Inbound, encode
from protocol.messages import MAX_BATCH_POINTS, TelemetryPoint
from protocol.topics import Channel, gateway_topic

GATEWAY = "gw-01"
NOW_MS = 1_700_000_999_000


@pytest.fixture
def stamper(tmp_path: Path) -> EnvelopeStamper:
    return EnvelopeStamper(GATEWAY, SequenceCounter(tmp_path / "sequence"), lambda: NOW_MS)


def measurements(n: int) -> list[Measured]:
    return [Measured(f"camera-{i % 2}", "line_in", float(i), 1_700_000_000_000 + i) for i in range(n)]


def test_nothing_pending_drains_to_no_batch(stamper: EnvelopeStamper) -> None:
    batcher = TelemetryBatcher(stamper)

    assert batcher.drain() == []
    assert stamper.stamp()["seq"] == 0, "an empty drain must not use up sequence numbers"


def test_pending_points_are_counted_and_cleared_by_drain(stamper: EnvelopeStamper) -> None:
    batcher = TelemetryBatcher(stamper, max_points=10)
    for measured in measurements(4):
        batcher.add(measured)
    assert len(batcher) == 4

    [batch] = batcher.drain()

    assert len(batch.points) == 4
    assert len(batcher) == 0
    assert batcher.drain() == []


def test_points_keep_device_metric_value_and_observation_time(stamper: EnvelopeStamper) -> None:
    batcher = TelemetryBatcher(stamper)
    batcher.add(Measured("camera-1", "line_out", 7.0, 1_700_000_000_042))

    [batch] = batcher.drain()

    assert batch.points == [TelemetryPoint(device_id="camera-1", metric="line_out", value=7.0, ts=1_700_000_000_042)]
    assert batch.gateway_id == GATEWAY
    assert batch.ts == NOW_MS


@pytest.mark.parametrize(("n", "sizes"), [(7, [3, 3, 1]), (6, [3, 3]), (3, [3]), (1, [1])])
def test_batches_split_at_max_points_in_arrival_order(stamper: EnvelopeStamper, n: int, sizes: list[int]) -> None:
    batcher = TelemetryBatcher(stamper, max_points=3)
    for measured in measurements(n):
        batcher.add(measured)

    batches = batcher.drain()

    assert [len(batch.points) for batch in batches] == sizes
    assert [point.value for batch in batches for point in batch.points] == [float(i) for i in range(n)]
    assert [batch.seq for batch in batches] == sorted({batch.seq for batch in batches})
    assert len({batch.event_id for batch in batches}) == len(batches)


def test_by_default_batches_respect_both_the_point_limit_and_the_payload_limit(stamper: EnvelopeStamper) -> None:
    batcher = TelemetryBatcher(stamper)
    for measured in measurements(3 * MAX_BATCH_POINTS):
        batcher.add(measured)

    batches = batcher.drain()

    assert len(batches) > 1
    assert all(len(batch.points) <= MAX_BATCH_POINTS for batch in batches)
    assert all(len(encode(batch)) <= DEFAULT_MAX_PAYLOAD_BYTES for batch in batches)
    assert [point.value for batch in batches for point in batch.points] == [
        float(i) for i in range(3 * MAX_BATCH_POINTS)
    ]


def test_a_small_payload_limit_splits_batches_before_the_point_limit(stamper: EnvelopeStamper) -> None:
    batcher = TelemetryBatcher(stamper, max_points=1000, max_payload_bytes=1024)
    for measured in measurements(50):
        batcher.add(measured)

    batches = batcher.drain()

    assert len(batches) > 1
    assert all(len(encode(batch)) <= 1024 for batch in batches)
    assert sum(len(batch.points) for batch in batches) == 50


long_ids = st.from_regex(r"^[a-z0-9][a-z0-9_-]{40,63}$", fullmatch=True)
long_metrics = st.from_regex(r"^[a-z][a-z0-9_]{40,63}$", fullmatch=True)
worst_case_points = st.builds(
    Measured,
    device_id=long_ids,
    metric=long_metrics,
    value=st.floats(allow_nan=False, allow_infinity=False),
    ts=st.integers(min_value=0, max_value=MAX_EPOCH_MS),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(
    observed=st.lists(worst_case_points, min_size=1, max_size=60),
    max_payload_bytes=st.integers(min_value=600, max_value=8 * 1024),
)
def test_every_batch_fits_the_decoder_payload_limit(
    stamper: EnvelopeStamper, observed: list[Measured], max_payload_bytes: int
) -> None:
    batcher = TelemetryBatcher(stamper, max_payload_bytes=max_payload_bytes)
    for measured in observed:
        batcher.add(measured)
    decoder = Decoder(max_payload_bytes=max_payload_bytes)

    batches = batcher.drain()

    topic = gateway_topic("lakeside", GATEWAY, Channel.TELEMETRY)
    for batch in batches:
        assert isinstance(decoder.decode(topic, encode(batch)), Inbound)
    assert [p.value for batch in batches for p in batch.points] == [m.value for m in observed]

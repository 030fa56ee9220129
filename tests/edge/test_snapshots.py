"""The snapshot store on real files: JPEGs that fit a command response, rate limits, retention,
the disk budget, ids that cannot reach outside the store, and what a power cut leaves behind."""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from edge.errors import SnapshotNotFoundError
from edge.snapshots import SnapshotStore, encode_jpeg, is_snapshot_id
from protocol.gateway_config import SnapshotPolicy
from protocol.messages import MAX_ATTACHMENT_BYTES
from tests.edge.helpers import FakeClock

NOW_MS = 1_700_000_000_000
CAMERA = "gate-cam-1"
OTHER_CAMERA = "gate-cam-2"
INTERVAL_S = 10.0
RETENTION_S = 3_600.0
MIB = 1024 * 1024


def scene(width: int, height: int, seed: int = 0) -> NDArray[np.uint8]:
    """A BGR frame with smooth gradients, a box and text: roughly what a camera sees."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = (x * 255 // width).astype(np.uint8)
    frame[..., 1] = (y * 255 // height).astype(np.uint8)
    frame[..., 2] = 40 + 20 * seed % 200
    cv2.rectangle(frame, (width // 4, height // 4), (width // 2, height // 2), (20, 200, 40), -1)
    cv2.putText(frame, f"GATE {seed}", (width // 3, 3 * height // 4), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return frame


def noise(width: int, height: int, seed: int = 0) -> NDArray[np.uint8]:
    """The worst case for JPEG: every pixel random."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def decoded(jpeg: bytes) -> NDArray[np.uint8]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return np.asarray(image, dtype=np.uint8)


def policy(**changes: object) -> SnapshotPolicy:
    return SnapshotPolicy.model_validate({"min_interval_s": INTERVAL_S, "retention_s": RETENTION_S, **changes})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW_MS)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "state" / "snapshots"


@pytest.fixture
def store(directory: Path, clock: FakeClock) -> SnapshotStore:
    return SnapshotStore(directory, policy(), clock)


def files_in(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def test_a_kept_snapshot_is_listed_and_reads_back_as_a_downscaled_jpeg_of_the_frame(store: SnapshotStore) -> None:
    frame = scene(1280, 720)

    info = store.keep(CAMERA, frame, NOW_MS - 5, "line_crossing in")

    assert info is not None
    assert (info.device_id, info.ts, info.reason) == (CAMERA, NOW_MS - 5, "line_crossing in")
    assert store.list() == [info]
    jpeg = store.read(info.id)
    assert len(jpeg) == info.size_bytes <= MAX_ATTACHMENT_BYTES
    image = decoded(jpeg)
    assert image.shape == (360, 640, 3)
    expected = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(image.astype(np.int16) - expected).mean() < 4


def test_a_frame_narrower_than_max_width_keeps_its_size(store: SnapshotStore) -> None:
    info = store.keep(CAMERA, scene(320, 180), NOW_MS, "tamper")

    assert info is not None
    image = decoded(store.read(info.id))
    assert image.shape == (180, 320, 3)


def test_even_pure_noise_is_made_to_fit_one_command_response(store: SnapshotStore) -> None:
    info = store.keep(CAMERA, noise(1920, 1080), NOW_MS, "tamper")

    assert info is not None
    jpeg = store.read(info.id)
    assert len(jpeg) <= MAX_ATTACHMENT_BYTES
    assert decoded(jpeg).ndim == 3


def test_encoding_lowers_quality_then_size_until_the_jpeg_fits() -> None:
    frame = noise(640, 360)
    generous = encode_jpeg(frame, 640, 90, limit=10 * MIB)
    tight = encode_jpeg(frame, 640, 90, limit=8_000)

    assert len(tight) <= 8_000 < len(generous)
    generous_image = decoded(generous)
    tight_image = decoded(tight)
    assert generous_image.shape == (360, 640, 3)
    assert tight_image.shape[1] < 640  # lower quality alone was not enough for noise
    assert tight_image.shape[1] / tight_image.shape[0] == pytest.approx(640 / 360, rel=0.02)


def test_ids_are_random_hex_and_no_file_name_names_the_camera_or_the_time(
    store: SnapshotStore, directory: Path
) -> None:
    first = store.keep(CAMERA, scene(640, 360), NOW_MS, "motion")
    second = store.keep(OTHER_CAMERA, scene(640, 360), NOW_MS, "motion")

    assert first is not None
    assert second is not None
    assert first.id != second.id
    assert is_snapshot_id(first.id)
    assert is_snapshot_id(second.id)
    assert files_in(directory) == {f"{first.id}.jpg", f"{first.id}.json", f"{second.id}.jpg", f"{second.id}.json"}
    assert not any("cam" in name or str(NOW_MS) in name for name in files_in(directory))
    assert all((path.stat().st_mode & 0o077) == 0 for path in directory.iterdir())  # only the agent reads them


def test_a_camera_keeps_at_most_one_snapshot_per_interval(store: SnapshotStore) -> None:
    interval_ms = round(INTERVAL_S * 1000)

    first = store.keep(CAMERA, scene(640, 360), NOW_MS, "motion")
    too_soon = store.keep(CAMERA, scene(640, 360), NOW_MS + interval_ms - 1, "motion")
    other_camera = store.keep(OTHER_CAMERA, scene(640, 360), NOW_MS + 1, "motion")
    next_one = store.keep(CAMERA, scene(640, 360), NOW_MS + interval_ms, "motion")

    assert first is not None
    assert too_soon is None
    assert other_camera is not None
    assert next_one is not None
    assert [info.id for info in store.list(CAMERA)] == [next_one.id, first.id]
    assert store.list(OTHER_CAMERA) == [other_camera]


def test_list_is_newest_first_and_filters_by_camera(store: SnapshotStore) -> None:
    kept = [store.keep(CAMERA, scene(64, 36, i), NOW_MS - 60_000 + i * 20_000, f"n{i}") for i in range(3)]
    other = store.keep(OTHER_CAMERA, scene(64, 36), NOW_MS - 30_000, "other")

    assert store.list() == [kept[2], other, kept[1], kept[0]]
    assert store.list(CAMERA) == [kept[2], kept[1], kept[0]]
    assert store.list("no-such-camera") == []


def test_snapshots_are_gone_after_the_retention_period(store: SnapshotStore, directory: Path, clock: FakeClock) -> None:
    old = store.keep(CAMERA, scene(640, 360), NOW_MS, "motion")
    new = store.keep(OTHER_CAMERA, scene(640, 360), NOW_MS + 60_000, "motion")
    assert old is not None
    assert new is not None

    clock.now_ms = NOW_MS + round(RETENTION_S * 1000) + 1

    assert store.list() == [new]  # expired is never listed, purged or not
    with pytest.raises(SnapshotNotFoundError):
        store.read(old.id)
    assert store.purge() == 1
    assert files_in(directory) == {f"{new.id}.jpg", f"{new.id}.json"}
    assert store.read(new.id)
    assert store.purge() == 0


def test_the_oldest_snapshots_go_first_when_they_outgrow_max_bytes(directory: Path, clock: FakeClock) -> None:
    store = SnapshotStore(directory, policy(max_bytes=MIB), clock)
    kept = []
    for i in range(40):  # noise: ~30 KB each, so ~1.2 MiB in all
        info = store.keep(CAMERA, noise(640, 360, seed=i), NOW_MS + i * 10_000, "motion")
        assert info is not None
        kept.append(info)

    listed = store.list()
    disk = sum(path.stat().st_size for path in directory.iterdir())
    assert 0 < len(listed) < len(kept)
    assert [info.id for info in listed] == [info.id for info in reversed(kept[-len(listed) :])]  # the newest stay
    assert store.disk_bytes == disk <= MIB
    assert files_in(directory) == {f"{info.id}{suffix}" for info in listed for suffix in (".jpg", ".json")}


def test_a_smaller_budget_pushed_later_purges_at_once(directory: Path, clock: FakeClock) -> None:
    store = SnapshotStore(directory, policy(max_bytes=4 * MIB), clock)
    for i in range(40):
        store.keep(CAMERA, noise(640, 360, seed=i), NOW_MS + i * 10_000, "motion")
    assert store.count == 40

    removed = store.set_policy(policy(max_bytes=MIB))

    assert removed == 40 - store.count > 0
    assert store.disk_bytes <= MIB


def test_disabling_snapshots_deletes_them_and_keeps_no_new_ones(store: SnapshotStore, directory: Path) -> None:
    store.keep(CAMERA, scene(640, 360), NOW_MS, "motion")

    assert store.set_policy(policy(enabled=False)) == 1
    assert store.keep(OTHER_CAMERA, scene(640, 360), NOW_MS, "motion") is None
    assert store.list() == []
    assert files_in(directory) == set()


def test_the_index_survives_a_restart(store: SnapshotStore, directory: Path, clock: FakeClock) -> None:
    info = store.keep(CAMERA, scene(640, 360), NOW_MS, "motion on the road")
    assert info is not None
    jpeg = store.read(info.id)

    reopened = SnapshotStore(directory, policy(), clock)

    assert reopened.list() == [info]
    assert reopened.read(info.id) == jpeg
    assert reopened.disk_bytes == store.disk_bytes


def test_expired_snapshots_are_deleted_when_the_store_opens(
    store: SnapshotStore, directory: Path, clock: FakeClock
) -> None:
    store.keep(CAMERA, scene(640, 360), NOW_MS, "motion")
    clock.now_ms = NOW_MS + round(RETENTION_S * 1000) + 1

    reopened = SnapshotStore(directory, policy(), clock)

    assert reopened.count == 0
    assert files_in(directory) == set()


@pytest.mark.parametrize(
    "snapshot_id",
    [
        "../../etc/passwd",
        "../outside",
        "/etc/passwd",
        "",
        "0" * 31,
        "0" * 33,
        "A" * 32,
        "g" * 32,
        "0" * 28 + ".jpg",
        "0" * 30 + "/.",
        "0" * 32 + "\x00",
    ],
)
def test_ids_that_are_not_well_formed_are_refused(store: SnapshotStore, directory: Path, snapshot_id: str) -> None:
    (directory.parent / "outside.jpg").write_bytes(b"not for you")

    with pytest.raises(SnapshotNotFoundError, match="malformed"):
        store.read(snapshot_id)
    with pytest.raises(SnapshotNotFoundError, match="malformed"):
        store.info(snapshot_id)


def test_a_well_formed_but_unknown_id_is_not_found(store: SnapshotStore, directory: Path) -> None:
    stray = "0123456789abcdef" * 2
    (directory / f"{stray}.jpg").write_bytes(b"\xff\xd8 a file the store never indexed")

    with pytest.raises(SnapshotNotFoundError, match="no snapshot"):
        store.read(stray)


def test_what_a_power_cut_left_half_written_is_never_served_and_is_cleaned_up(
    store: SnapshotStore, directory: Path, clock: FakeClock
) -> None:
    good = store.keep(CAMERA, scene(640, 360, 1), NOW_MS, "motion")
    truncated = store.keep(OTHER_CAMERA, scene(640, 360, 2), NOW_MS, "motion")
    unindexed = store.keep(CAMERA, scene(640, 360, 3), NOW_MS + 60_000, "motion")
    assert good is not None
    assert truncated is not None
    assert unindexed is not None
    jpeg = (directory / f"{truncated.id}.jpg").read_bytes()
    # The JPEG's data never reached the disk although its sidecar did.
    (directory / f"{truncated.id}.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    # Cut between the JPEG's rename and the sidecar's.
    (directory / f"{unindexed.id}.json").unlink()
    # Cut while writing: temporary files of a JPEG and of a sidecar.
    (directory / f"{'a' * 32}.jpg.tmp").write_bytes(jpeg[:1000])
    (directory / f"{'b' * 32}.json.tmp").write_text('{"device_id": "gate-cam-1", "ts"', encoding="utf-8")
    # A sidecar whose JPEG is gone, and one that is not JSON at all.
    (directory / f"{'c' * 32}.json").write_text((directory / f"{good.id}.json").read_text(encoding="utf-8"))
    (directory / f"{'d' * 32}.jpg").write_bytes(jpeg)
    (directory / f"{'d' * 32}.json").write_bytes(b"\x00" * 40)

    reopened = SnapshotStore(directory, policy(), clock)

    assert reopened.list() == [good]
    for broken in (truncated.id, unindexed.id, "a" * 32, "b" * 32, "c" * 32, "d" * 32):
        with pytest.raises(SnapshotNotFoundError):
            reopened.read(broken)
    assert files_in(directory) == {f"{good.id}.jpg", f"{good.id}.json"}


def test_a_file_damaged_while_running_is_not_served(store: SnapshotStore, directory: Path) -> None:
    info = store.keep(CAMERA, scene(640, 360), NOW_MS, "motion")
    assert info is not None
    path = directory / f"{info.id}.jpg"
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(damaged))

    with pytest.raises(SnapshotNotFoundError, match="damaged"):
        store.read(info.id)
    assert store.list() == []
    assert files_in(directory) == set()


def test_a_failing_disk_costs_the_snapshot_not_the_camera(store: SnapshotStore, directory: Path) -> None:
    shutil.rmtree(directory)
    directory.write_bytes(b"")  # writes into it now fail, even for root

    assert store.keep(CAMERA, scene(640, 360), NOW_MS, "motion") is None
    assert store.write_failures == 1
    assert store.list() == []


def test_a_frame_that_is_no_image_costs_the_snapshot_not_the_camera(store: SnapshotStore, directory: Path) -> None:
    not_an_image = np.zeros((36, 64, 3), np.float32)

    assert store.keep(CAMERA, not_an_image, NOW_MS, "motion") is None  # type: ignore[arg-type]
    assert store.write_failures == 1
    assert files_in(directory) == set()


def test_a_sidecar_records_what_was_kept_without_any_pixels(store: SnapshotStore, directory: Path) -> None:
    info = store.keep(CAMERA, scene(640, 360), NOW_MS, "x" * 500)
    assert info is not None

    sidecar = json.loads((directory / f"{info.id}.json").read_text(encoding="utf-8"))

    assert set(sidecar) == {"version", "device_id", "ts", "reason", "size_bytes", "sha256"}
    assert sidecar["device_id"] == CAMERA
    assert sidecar["size_bytes"] == os.path.getsize(directory / f"{info.id}.jpg")
    assert len(info.reason) == len(sidecar["reason"]) == 120


def test_keep_refuses_a_device_id_that_is_not_one(store: SnapshotStore) -> None:
    with pytest.raises(ValueError, match="device id"):
        store.keep("../cam", scene(64, 36), NOW_MS, "motion")

"""Releases: a manifest of bounded, safe paths with every file's size and hash, signed by a release key, and a
release directory checked file by file against it."""

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from protocol.bounds import MAX_EPOCH_MS
from protocol.config_signing import key_id, verify_document
from protocol.errors import (
    ConfigSignatureError,
    ProtocolError,
    ReleaseError,
    ReleaseFileError,
    ReleaseSignatureError,
)
from protocol.releases import (
    MAX_RELEASE_FILE_BYTES,
    MAX_RELEASE_FILE_JSON_BYTES,
    MAX_RELEASE_FILES,
    RELEASE_FILE,
    RELEASE_PURPOSE,
    ReleaseFile,
    ReleaseManifest,
    SignedRelease,
    check_file,
    check_files,
    describe,
    file_sha256,
    is_release_path,
    sign_release,
    verify_release,
)
from protocol.updates import ReleaseKind

SHA = "ab" * 32
FILES = {
    "constraints.txt": b"outpost==0.2.0\nnumpy==2.1.0\n",
    "wheels/outpost-0.2.0-py3-none-any.whl": b"PK\x03\x04 outpost " * 50,
    "wheels/numpy-2.1.0-cp311-cp311-manylinux_2_28_aarch64.whl": bytes(range(256)) * 40,
    "empty.txt": b"",
}
UNSAFE_PATHS = [
    "../x",
    "a/../../x",
    "a/..",
    "..",
    ".",
    "./a",
    "a/./b",
    "/abs",
    "/etc/passwd",
    "a//b",
    "a/",
    "",
    ".hidden",
    "a/.hidden",
    "a\\b",
    "C:x",
    "a b",
    "a\n",
    "\na",
    "a\0b",
    "café.whl",
    "-rf",
    "~/x",
]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def entry(path: str = "a.whl", size: int = 1, sha256: str = SHA) -> dict[str, object]:
    return {"path": path, "size": size, "sha256": sha256}


def manifest_of(**fields: Any) -> ReleaseManifest:
    """A valid agent manifest, with ``fields`` replacing its own (as JSON values, the way release.json gives them)."""
    document: dict[str, Any] = {
        "kind": "agent",
        "version": "0.2.0",
        "created_ms": 1_750_000_000_000,
        "install": "outpost[edge]==0.2.0",
        "constraints": "constraints.txt",
        "platforms": ["manylinux2014_aarch64"],
        "notes": "faster uplink",
        "files": [entry("constraints.txt"), entry("wheels/outpost-0.2.0-py3-none-any.whl", 2_000)],
        **fields,
    }
    return ReleaseManifest.model_validate(document)


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    for relative, data in FILES.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    return tmp_path


@pytest.fixture
def described(release_dir: Path) -> ReleaseManifest:
    return ReleaseManifest(
        kind=ReleaseKind.AGENT,
        version="0.2.0",
        created_ms=1_750_000_000_000,
        constraints="constraints.txt",
        files=describe(release_dir, list(FILES)),
    )


# --- the manifest ---------------------------------------------------------------------------------------------


def test_a_manifest_round_trips_through_json_with_its_defaults() -> None:
    manifest = ReleaseManifest(
        kind=ReleaseKind.FIRMWARE, version="1.4.0", created_ms=0, files=[ReleaseFile.model_validate(entry())]
    )

    assert (manifest.schema_version, manifest.install, manifest.constraints) == (1, "", None)
    assert (manifest.platforms, manifest.notes) == ([], "")
    assert ReleaseManifest.model_validate_json(manifest.model_dump_json()) == manifest


def test_a_manifest_sums_its_files_and_finds_one_by_path() -> None:
    manifest = manifest_of()

    assert manifest.total_size == 2_001
    found = manifest.file("wheels/outpost-0.2.0-py3-none-any.whl")
    assert found is not None
    assert found.size == 2_000
    assert manifest.file("wheels/other.whl") is None


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_a_manifest_refuses_a_path_that_could_leave_the_release_directory_or_is_not_plain(path: str) -> None:
    assert not is_release_path(path)
    with pytest.raises(ValidationError, match="path"):
        manifest_of(files=[entry(path)], constraints=None)


@pytest.mark.parametrize(
    "path",
    [
        "main.py",
        "outpost_node/node.mpy",
        "wheels/opencv_python_headless-5.1.0.95-cp37-abi3-manylinux_2_28_x86_64.whl",
        "wheels/gpiozero-2.0.1.post3-py3-none-any.whl",
        "wheels/outpost-0.2.0+g1a2b-py3-none-any.whl",
        "a..b",
        "_private/x",
        "/".join(["d"] * 8),
        "x" * 128,
        "sub/release.json",
    ],
)
def test_a_manifest_takes_a_plain_relative_path(path: str) -> None:
    assert is_release_path(path)
    assert manifest_of(files=[entry(path)], constraints=None).files[0].path == path


@pytest.mark.parametrize(
    "path", ["/".join(["d"] * 9), "x" * 129, "a/" + "x" * 129], ids=["9-deep", "long", "long-part"]
)
def test_a_path_is_bounded_in_depth_and_length(path: str) -> None:
    assert not is_release_path(path)
    with pytest.raises(ValidationError, match="path"):
        manifest_of(files=[entry(path)], constraints=None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"files": []}, "files"),
        ({"files": [entry(f"f{i}") for i in range(MAX_RELEASE_FILES + 1)], "constraints": None}, "files"),
        ({"files": [entry(size=-1)], "constraints": None}, "size"),
        ({"files": [entry(size=MAX_RELEASE_FILE_BYTES + 1)], "constraints": None}, "size"),
        ({"files": [entry(sha256="AB" * 32)], "constraints": None}, "sha256"),
        ({"files": [entry(sha256="ab" * 31)], "constraints": None}, "sha256"),
        ({"created_ms": -1}, "created_ms"),
        ({"created_ms": MAX_EPOCH_MS + 1}, "created_ms"),
        ({"created_ms": 1.5}, "created_ms"),
        ({"version": ""}, "version"),
        ({"version": "-1"}, "version"),
        ({"version": "0.2 beta"}, "version"),
        ({"version": "1" * 65}, "version"),
        ({"version": "0.2.0\n"}, "version"),
        ({"kind": "kernel"}, "kind"),
        ({"install": "x" * 257}, "install"),
        ({"notes": "n" * 4_001}, "notes"),
        ({"platforms": ["manylinux2014_aarch64"] * 17}, "platforms"),
        ({"platforms": ["p" * 129]}, "platforms"),
        ({"schema_version": 2}, "schema_version"),
        ({"signed_by": "me"}, "signed_by"),
    ],
    ids=[
        "no-files", "too-many-files", "negative-size", "huge-size", "upper-case-hash", "short-hash",
        "negative-time", "time-past-9999", "fractional-time", "empty-version", "version-starts-with-dash",
        "version-with-space", "long-version", "version-with-newline", "unknown-kind", "long-install",
        "long-notes", "many-platforms", "long-platform", "future-schema", "unknown-field",
    ],
)  # fmt: skip
def test_a_manifest_refuses_values_out_of_bounds(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        manifest_of(**fields)


def test_a_manifest_takes_its_bounds_exactly() -> None:
    files = [entry(f"f{i}", size=MAX_RELEASE_FILE_BYTES if i == 0 else 0) for i in range(MAX_RELEASE_FILES)]
    manifest = manifest_of(
        files=files,
        constraints="f1",
        created_ms=MAX_EPOCH_MS,
        version="1" * 64,
        install="x" * 256,
        notes="n" * 4_000,
        platforms=["p" * 128] * 16,
    )

    assert len(manifest.files) == MAX_RELEASE_FILES
    assert manifest.total_size == MAX_RELEASE_FILE_BYTES


@pytest.mark.parametrize("version", ["0.2.0", "0.2.0rc1", "1.0.0.post3", "1!2.0", "0.2.0+g1a2b.dirty", "2026_05"])
def test_a_version_may_be_pep_440_or_the_firmwares_own(version: str) -> None:
    assert manifest_of(version=version).version == version


def test_a_manifest_lists_a_file_once() -> None:
    with pytest.raises(ValidationError, match="lists a file twice"):
        manifest_of(files=[entry("constraints.txt"), entry("a.whl"), entry("a.whl", size=2)])


def test_a_manifest_never_lists_the_signed_manifest_itself() -> None:
    assert not is_release_path(RELEASE_FILE)
    with pytest.raises(ValidationError, match=r"release\.json is the signed manifest, never one of its files"):
        manifest_of(files=[entry("constraints.txt"), entry(RELEASE_FILE)])


def test_a_manifests_constraints_file_is_one_of_its_files() -> None:
    with pytest.raises(ValidationError, match=r"constraints file pins\.txt is not one of the release's files"):
        manifest_of(constraints="pins.txt")
    with pytest.raises(ValidationError, match="constraints"):
        manifest_of(constraints="../constraints.txt")


def test_a_manifest_is_frozen() -> None:
    manifest = manifest_of()

    with pytest.raises(ValidationError, match="frozen"):
        manifest.version = "0.3.0"  # type: ignore[misc]


# --- describing files -----------------------------------------------------------------------------------------


def test_describe_gives_each_files_size_and_sha256_in_the_order_given(release_dir: Path) -> None:
    paths = list(reversed(FILES))

    entries = describe(release_dir, paths)

    assert [file.path for file in entries] == paths
    for file in entries:
        assert file.size == len(FILES[file.path])
        assert file.sha256 == hashlib.sha256(FILES[file.path]).hexdigest()


@pytest.mark.parametrize("path", [*UNSAFE_PATHS, RELEASE_FILE])
def test_describe_refuses_an_unsafe_path_before_reading_anything(tmp_path: Path, path: str) -> None:
    with pytest.raises(ReleaseFileError, match="cannot be a release file's path"):
        describe(tmp_path / "does-not-exist", [path])


def test_describe_says_which_file_it_cannot_read(release_dir: Path) -> None:
    missing = release_dir / "wheels" / "missing.whl"
    with pytest.raises(ReleaseFileError, match=f"^cannot read {re.escape(str(missing))}: No such file"):
        describe(release_dir, ["constraints.txt", "wheels/missing.whl"])


def test_file_sha256_reads_in_chunks_and_stops_past_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "three-mib"
    data = os.urandom(3 * 1024 * 1024 + 5)
    path.write_bytes(data)

    assert file_sha256(path) == (len(data), hashlib.sha256(data).hexdigest())
    assert file_sha256(path, limit=len(data)) == (len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(ReleaseFileError, match=f"^{re.escape(str(path))} is larger than {len(data) - 1} bytes$"):
        file_sha256(path, limit=len(data) - 1)


# --- signing and verifying ------------------------------------------------------------------------------------


def test_a_signed_release_verifies_with_its_key(key: Ed25519PrivateKey) -> None:
    manifest = manifest_of()

    signed = sign_release(key, manifest)

    assert signed.manifest == manifest
    assert signed.key_id == key_id(key.public_key())
    assert len(signed.signature) == 86
    public = key.public_key()
    assert verify_release([public], signed) is public
    assert sign_release(key, manifest) == signed, "Ed25519 signing is deterministic"


def test_the_signature_covers_the_manifest_under_the_release_purpose(key: Ed25519PrivateKey) -> None:
    manifest = manifest_of()
    signed = sign_release(key, manifest)
    document = manifest.model_dump(mode="json")

    verify_document(key.public_key(), {"purpose": RELEASE_PURPOSE, "manifest": document}, signed.signature)
    with pytest.raises(ConfigSignatureError):
        verify_document(key.public_key(), {"purpose": "outpost/config/v1", "manifest": document}, signed.signature)
    with pytest.raises(ConfigSignatureError):
        verify_document(key.public_key(), document, signed.signature)


def test_the_trusted_key_that_signed_is_found_among_several(key: Ed25519PrivateKey) -> None:
    others = [Ed25519PrivateKey.generate().public_key() for _ in range(2)]
    public = key.public_key()
    signed = sign_release(key, manifest_of())

    assert verify_release([others[0], public, others[1]], signed) is public


@pytest.mark.parametrize(
    "change",
    [
        {"version": "0.2.1"},
        {"kind": "firmware"},
        {"created_ms": 1_750_000_000_001},
        {"install": "outpost[edge,fleet]==0.2.0"},
        {"constraints": None},
        {"platforms": ["manylinux2014_x86_64"]},
        {"notes": "faster uplink!"},
        {"files": [entry("constraints.txt"), entry("wheels/outpost-0.2.0-py3-none-any.whl", 2_001)]},
        {"files": [entry("constraints.txt"), entry("wheels/outpost-0.2.0-py3-none-any.whl", 2_000, "cd" * 32)]},
        {"files": [entry("constraints.txt"), entry("wheels/outpost-0.2.1-py3-none-any.whl", 2_000)]},
        {"files": [entry("constraints.txt")]},
        {"files": [entry("constraints.txt"), entry("wheels/outpost-0.2.0-py3-none-any.whl", 2_000), entry("x.whl")]},
    ],
    ids=[
        "version", "kind", "created", "install", "constraints", "platforms", "notes", "file-size", "file-hash",
        "file-renamed", "file-dropped", "file-added",
    ],
)  # fmt: skip
def test_a_manifest_altered_after_signing_does_not_verify(key: Ed25519PrivateKey, change: dict[str, Any]) -> None:
    signed = sign_release(key, manifest_of())
    altered = signed.model_copy(update={"manifest": manifest_of(**change)})

    with pytest.raises(ReleaseSignatureError, match="was altered after signing") as caught:
        verify_release([key.public_key()], altered)

    assert f"with key {signed.key_id}" in str(caught.value)


def test_a_release_json_edited_by_hand_does_not_verify(key: Ed25519PrivateKey) -> None:
    document = json.loads(sign_release(key, manifest_of()).dump())
    document["manifest"]["files"][1]["sha256"] = "cd" * 32

    edited = SignedRelease.parse(json.dumps(document).encode())

    with pytest.raises(ReleaseSignatureError, match=r"release agent 0\.2\.0 was altered after signing"):
        verify_release([key.public_key()], edited)


def test_a_release_signed_by_an_untrusted_key_names_both_keys(key: Ed25519PrivateKey) -> None:
    stranger = Ed25519PrivateKey.generate()
    signed = sign_release(stranger, manifest_of())
    other = Ed25519PrivateKey.generate().public_key()

    with pytest.raises(ReleaseSignatureError) as caught:
        verify_release([key.public_key(), other], signed)

    assert str(caught.value) == (
        f"release agent 0.2.0 is signed by key {key_id(stranger.public_key())}, which is not a trusted release key "
        f"(trusted: {key_id(key.public_key())}, {key_id(other)})"
    )


def test_a_release_claiming_a_trusted_keys_id_is_checked_against_that_key(key: Ed25519PrivateKey) -> None:
    forged = sign_release(Ed25519PrivateKey.generate(), manifest_of())
    claiming = forged.model_copy(update={"key_id": key_id(key.public_key())})

    with pytest.raises(ReleaseSignatureError, match="was altered after signing"):
        verify_release([key.public_key()], claiming)


def test_nothing_verifies_when_no_release_key_is_trusted(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ReleaseSignatureError, match="no release key is trusted here: nothing can be verified"):
        verify_release([], sign_release(key, manifest_of()))


def test_release_errors_are_protocol_errors() -> None:
    for error in (ReleaseSignatureError, ReleaseFileError):
        assert issubclass(error, ReleaseError)
        assert issubclass(error, ProtocolError)


# --- release.json ---------------------------------------------------------------------------------------------


def test_release_json_round_trips_through_a_directory(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    signed = sign_release(key, manifest_of())
    (tmp_path / RELEASE_FILE).write_bytes(signed.dump())

    read = SignedRelease.read(tmp_path)

    assert read == signed
    verify_release([key.public_key()], read)
    assert signed.dump().endswith(b"}\n")


def test_reading_a_directory_without_a_release_says_so(tmp_path: Path) -> None:
    with pytest.raises(ReleaseFileError, match=f"^no release in {re.escape(str(tmp_path))}: cannot read release.json"):
        SignedRelease.read(tmp_path)
    with pytest.raises(ReleaseFileError, match="no release in"):
        SignedRelease.read(tmp_path / "missing")
    (tmp_path / RELEASE_FILE).mkdir()
    with pytest.raises(ReleaseFileError, match="no release in"):
        SignedRelease.read(tmp_path)


def test_a_release_json_too_big_is_refused(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    too_big = sign_release(key, manifest_of()).dump().ljust(MAX_RELEASE_FILE_JSON_BYTES + 1, b" ")
    (tmp_path / RELEASE_FILE).write_bytes(too_big * 8)

    with pytest.raises(ReleaseFileError, match=f"larger than {MAX_RELEASE_FILE_JSON_BYTES} bytes"):
        SignedRelease.read(tmp_path)
    with pytest.raises(ReleaseFileError, match=f"^upload is larger than {MAX_RELEASE_FILE_JSON_BYTES} bytes$"):
        SignedRelease.parse(too_big, "upload")
    assert SignedRelease.parse(too_big[:MAX_RELEASE_FILE_JSON_BYTES]).key_id == key_id(key.public_key())


def _misshapen(key: Ed25519PrivateKey, **fields: Any) -> bytes:
    document = json.loads(sign_release(key, manifest_of()).dump())
    document.update(fields)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b'{"schema_version": 1}',
        b'{"manifest": {}, "key_id": "0123456789abcdef", "signature": "' + b"A" * 86 + b'"}',
    ],
    ids=["empty", "text", "binary", "array", "null", "no-fields", "empty-manifest"],
)
def test_garbage_is_not_a_release(data: bytes) -> None:
    with pytest.raises(ReleaseFileError, match=r"^somewhere/release\.json is not a release manifest: "):
        SignedRelease.parse(data, "somewhere/release.json")


@pytest.mark.parametrize(
    "fields",
    [
        {"key_id": "0123456789ABCDEF"},
        {"key_id": "abc"},
        {"signature": "A" * 85},
        {"signature": "A" * 86 + "=="},
        {"schema_version": 2},
        {"comment": "extra"},
    ],
    ids=["upper-case-key-id", "short-key-id", "short-signature", "padded-signature", "future-schema", "extra-field"],
)
def test_a_misshapen_release_json_is_not_a_release(key: Ed25519PrivateKey, fields: dict[str, object]) -> None:
    with pytest.raises(ReleaseFileError, match="is not a release manifest"):
        SignedRelease.parse(_misshapen(key, **fields))


# --- checking files -------------------------------------------------------------------------------------------


def test_files_as_described_check(release_dir: Path, described: ReleaseManifest) -> None:
    check_files(release_dir, described)
    for file in described.files:
        check_file(release_dir, file)


def test_a_missing_file_is_named(release_dir: Path, described: ReleaseManifest) -> None:
    (release_dir / "wheels" / "outpost-0.2.0-py3-none-any.whl").unlink()

    with pytest.raises(ReleaseFileError, match=r"^cannot read wheels/outpost-0\.2\.0-py3-none-any\.whl: No such file"):
        check_files(release_dir, described)


def test_one_altered_byte_is_found(release_dir: Path, described: ReleaseManifest) -> None:
    path = release_dir / "wheels" / "numpy-2.1.0-cp311-cp311-manylinux_2_28_aarch64.whl"
    data = bytearray(path.read_bytes())
    data[5_000] ^= 0x01
    path.write_bytes(data)
    expected = described.file("wheels/numpy-2.1.0-cp311-cp311-manylinux_2_28_aarch64.whl")
    assert expected is not None

    with pytest.raises(ReleaseFileError) as caught:
        check_files(release_dir, described)

    assert str(caught.value) == (
        f"wheels/numpy-2.1.0-cp311-cp311-manylinux_2_28_aarch64.whl does not match the release manifest "
        f"({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}…; "
        f"expected {expected.size} bytes, {expected.sha256[:12]}…)"
    )


def test_a_shorter_file_is_found(release_dir: Path, described: ReleaseManifest) -> None:
    path = release_dir / "constraints.txt"
    path.write_bytes(path.read_bytes()[:-1])

    shorter = len(FILES["constraints.txt"]) - 1
    with pytest.raises(
        ReleaseFileError, match=rf"^constraints\.txt does not match the release manifest \({shorter} bytes"
    ):
        check_files(release_dir, described)


def test_a_file_that_should_be_empty_but_is_not_is_found(release_dir: Path, described: ReleaseManifest) -> None:
    (release_dir / "empty.txt").write_bytes(b"\n")

    with pytest.raises(ReleaseFileError, match=r"empty\.txt is larger than 0 bytes$"):
        check_files(release_dir, described)


def test_a_file_larger_than_signed_is_refused_without_reading_it_all(release_dir: Path) -> None:
    """An endless file (``/dev/zero``) stands in for a huge one: reading it all would never end."""
    (release_dir / "endless.bin").symlink_to("/dev/zero")
    expected = ReleaseFile(path="endless.bin", size=10, sha256=hashlib.sha256(bytes(10)).hexdigest())

    with pytest.raises(ReleaseFileError, match=r"^endless\.bin is larger than 10 bytes$"):
        check_file(release_dir, expected)


def test_the_first_file_not_as_signed_is_named(release_dir: Path, described: ReleaseManifest) -> None:
    for relative in ("empty.txt", "constraints.txt"):
        with (release_dir / relative).open("ab") as file:
            file.write(b"#")

    with pytest.raises(ReleaseFileError, match=r"constraints\.txt is larger than") as caught:
        check_files(release_dir, described)

    assert "empty.txt" not in str(caught.value)


def test_a_directory_where_a_file_belongs_is_refused(release_dir: Path, described: ReleaseManifest) -> None:
    (release_dir / "empty.txt").unlink()
    (release_dir / "empty.txt").mkdir()

    with pytest.raises(ReleaseFileError, match=r"^cannot read empty\.txt: Is a directory"):
        check_files(release_dir, described)


def test_files_beside_the_manifest_are_not_its_concern(release_dir: Path, described: ReleaseManifest) -> None:
    (release_dir / "wheels" / "unlisted-1.0-py3-none-any.whl").write_bytes(b"extra")

    check_files(release_dir, described)

"""``outpost firmware build --sign-key``: the node firmware built as a signed release, for updates over the air.

mpy-cross compiles for real, from a copy of the firmware source (as in test_firmware_cli.py); the release key is
made by ``outpost release keygen`` and the result checked by ``outpost release verify``.
"""

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from protocol.releases import RELEASE_FILE, SignedRelease
from protocol.updates import ReleaseKind
from tests.outpost_cli.test_release_cli import PASSWORD, ReleaseKey, errors, keygen, outpost

FIRMWARE_DIR: Final = Path(__file__).resolve().parents[2] / "firmware"


def built_paths(build: Path) -> list[str]:
    manifest = json.loads((build / "manifest.json").read_text())
    return [str(file["path"]) for file in manifest["files"]]


def files_on_disk(build: Path) -> list[str]:
    return sorted(path.relative_to(build).as_posix() for path in build.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the firmware source, so edits to firmware/ while the tests run cannot stale the build."""
    copy = tmp_path_factory.mktemp("source") / "firmware"
    shutil.copytree(FIRMWARE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def release_key(tmp_path_factory: pytest.TempPathFactory) -> ReleaseKey:
    return keygen(tmp_path_factory.mktemp("keys") / "release.key")


@dataclass(frozen=True)
class Built:
    out: Path
    output: str


@pytest.fixture(scope="module")
def signed_build(source: Path, release_key: ReleaseKey, tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("signed") / "build"
    result = outpost("firmware", "build", "--source", source, "--out", out, "--sign-key", release_key.path)
    assert result.exit_code == 0, result.output
    return Built(out, result.output)


def test_a_signed_build_is_a_firmware_release_of_every_built_file_and_the_manifest(
    signed_build: Built, release_key: ReleaseKey
) -> None:
    release = SignedRelease.read(signed_build.out)
    manifest = release.manifest
    built = json.loads((signed_build.out / "manifest.json").read_text())

    assert release.key_id == release_key.key_id
    assert manifest.kind is ReleaseKind.FIRMWARE
    assert manifest.version == built["firmware_version"]
    assert (manifest.install, manifest.constraints, manifest.platforms) == ("", None, [])
    assert [file.path for file in manifest.files] == [*built_paths(signed_build.out), "manifest.json"]
    assert files_on_disk(signed_build.out) == sorted([*built_paths(signed_build.out), "manifest.json", RELEASE_FILE])
    for file in manifest.files:
        data = (signed_build.out / file.path).read_bytes()
        assert (file.size, file.sha256) == (len(data), hashlib.sha256(data).hexdigest()), file.path
    assert f"signed by release key {release_key.key_id}: {signed_build.out / RELEASE_FILE}\n" in signed_build.output


def test_a_signed_build_verifies_with_the_release_keys_public_half(
    signed_build: Built, release_key: ReleaseKey
) -> None:
    result = outpost("release", "verify", signed_build.out, "--trust", release_key.public)

    assert result.exit_code == 0, result.output
    version = SignedRelease.read(signed_build.out).manifest.version
    files = len(built_paths(signed_build.out)) + 1
    assert result.output == f"ok: firmware {version}, {files} files as signed by {release_key.key_id}\n"


def test_a_signed_build_changed_afterwards_does_not_verify(
    signed_build: Built, release_key: ReleaseKey, tmp_path: Path
) -> None:
    changed = tmp_path / "build"
    shutil.copytree(signed_build.out, changed)
    node = changed / "outpost_node" / "node.mpy"
    with node.open("ab") as file:
        file.write(b"\0")
    signed = SignedRelease.read(changed).manifest.file("outpost_node/node.mpy")
    assert signed is not None

    result = outpost("release", "verify", changed, "--trust", release_key.public)

    assert result.exit_code == 1
    assert errors(result) == [f"error: outpost_node/node.mpy is larger than {signed.size} bytes"]


def test_a_manifest_json_changed_afterwards_does_not_verify(
    signed_build: Built, release_key: ReleaseKey, tmp_path: Path
) -> None:
    """manifest.json is what ``flash`` trusts: it is signed with the files it describes."""
    changed = tmp_path / "build"
    shutil.copytree(signed_build.out, changed)
    manifest = changed / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"mpy_format": "6.3"', '"mpy_format": "6.2"'))

    result = outpost("release", "verify", changed, "--trust", release_key.public)

    assert result.exit_code == 1
    assert errors(result)[0].startswith("error: manifest.json does not match the release manifest")


def test_an_unsigned_rebuild_removes_the_stale_release_json(
    signed_build: Built, source: Path, release_key: ReleaseKey, tmp_path: Path
) -> None:
    out = tmp_path / "build"
    shutil.copytree(signed_build.out, out)
    assert (out / RELEASE_FILE).is_file()

    result = outpost("firmware", "build", "--source", source, "--out", out)

    assert result.exit_code == 0, result.output
    assert not (out / RELEASE_FILE).exists()
    assert (out / "manifest.json").is_file()
    assert "signed by" not in result.output
    verify = outpost("release", "verify", out, "--trust", release_key.public)
    assert verify.exit_code == 1
    assert errors(verify)[0].startswith(f"error: no release in {out}: cannot read release.json")


def test_a_failed_rebuild_leaves_no_stale_release_json(
    signed_build: Built, source: Path, release_key: ReleaseKey, tmp_path: Path
) -> None:
    broken = tmp_path / "firmware"
    shutil.copytree(source, broken)
    with (broken / "outpost_node" / "button.py").open("a") as file:
        file.write("\n\ndef broken(:\n    pass\n")
    out = tmp_path / "build"
    shutil.copytree(signed_build.out, out)

    result = outpost("firmware", "build", "--source", broken, "--out", out, "--sign-key", release_key.path)

    assert result.exit_code == 1
    assert "mpy-cross refused outpost_node/button.py" in result.output
    assert not (out / RELEASE_FILE).exists()
    assert not (out / "manifest.json").exists()


def test_a_signed_rebuild_signs_the_new_files(
    signed_build: Built, source: Path, release_key: ReleaseKey, tmp_path: Path
) -> None:
    changed = tmp_path / "firmware"
    shutil.copytree(source, changed)
    with (changed / "main.py").open("a") as file:
        file.write("\n# a later fix\n")
    out = tmp_path / "build"
    shutil.copytree(signed_build.out, out)

    result = outpost("firmware", "build", "--source", changed, "--out", out, "--sign-key", release_key.path)

    assert result.exit_code == 0, result.output
    main = SignedRelease.read(out).manifest.file("main.py")
    assert main is not None
    assert main.sha256 == hashlib.sha256((changed / "main.py").read_bytes()).hexdigest()
    assert outpost("release", "verify", out, "--trust", release_key.public).exit_code == 0


def test_an_encrypted_release_key_signs_with_its_password(source: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "release.key", password=PASSWORD)
    out = tmp_path / "build"
    build = ("firmware", "build", "--source", source, "--out", out, "--sign-key", key.path)

    without = outpost(*build)

    assert without.exit_code == 1
    assert errors(without)[0].startswith(f"error: {key.path} is not a usable Ed25519 release key: ")
    assert not out.exists(), "the key is loaded before anything is built"

    result = outpost(*build, password=PASSWORD)

    assert result.exit_code == 0, result.output
    assert SignedRelease.read(out).key_id == key.key_id
    assert outpost("release", "verify", out, "--trust", key.public).exit_code == 0


def test_a_missing_sign_key_fails_before_building(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    key = tmp_path / "missing.key"

    result = outpost("firmware", "build", "--source", source, "--out", out, "--sign-key", key)

    assert result.exit_code == 1
    assert errors(result) == [f"error: cannot read the release key {key}: No such file or directory"]
    assert "Traceback" not in result.output
    assert not out.exists()

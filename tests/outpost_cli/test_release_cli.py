"""``outpost release`` as whoever builds releases meets it: making the release key, building a signed agent release,
verifying one.

The agent release is built for real, once for the module: pip builds Outpost's wheel from a copy of this checkout
(``pip wheel`` writes build files into the tree it builds; the copy keeps them out of the checkout, and keeps
pytest-xdist's workers from building in one tree at once) and downloads every wheel ``outpost[edge]`` needs.
"""

import os
import re
import shutil
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from typer.testing import CliRunner, Result

from outpost_cli.main import app
from outpost_cli.release_build import NOT_SOURCE, PASSWORD_VARIABLE, ReleaseBuildError, wheel_name_version
from protocol.config_signing import key_id, load_private_key, load_public_key
from protocol.errors import SigningKeyError
from protocol.releases import RELEASE_FILE, SignedRelease
from protocol.updates import ReleaseKind

CHECKOUT: Final = Path(__file__).resolve().parents[2]
PROJECT: Final = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
VERSION: Final[str] = PROJECT["version"]
PASSWORD: Final = "correct horse battery staple"

runner = CliRunner()


def outpost(*args: str | Path, password: str | None = None) -> Result:
    """``outpost ARGS``, with the release key's password in the environment only when one is given."""
    return runner.invoke(app, [str(arg) for arg in args], env={PASSWORD_VARIABLE: password})


@dataclass(frozen=True)
class ReleaseKey:
    path: Path
    public: Path
    key_id: str


def keygen(path: Path, password: str | None = None) -> ReleaseKey:
    result = outpost("release", "keygen", path, password=password)
    assert result.exit_code == 0, result.output
    public = path.with_name(path.name + ".pub")
    return ReleaseKey(path, public, key_id(load_public_key(public.read_bytes())))


def linked_copy(release: Path, to: Path) -> Path:
    """``release`` again at ``to``, its files symlinks to the original's: a test replaces one without copying all."""
    shutil.copytree(release, to, copy_function=os.symlink)
    return to


def replace(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` in place of the symlink there (the original stays as it was)."""
    path.unlink()
    path.write_bytes(data)


def errors(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, whatever the test runner's is, so file modes can be checked exactly."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's source tree, copied."""
    copy = tmp_path_factory.mktemp("checkout") / "outpost"
    shutil.copytree(CHECKOUT, copy, ignore=NOT_SOURCE)
    return copy


@pytest.fixture(scope="module")
def release_key(tmp_path_factory: pytest.TempPathFactory) -> ReleaseKey:
    return keygen(tmp_path_factory.mktemp("keys") / "release.key")


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> ReleaseKey:
    return keygen(tmp_path_factory.mktemp("other-keys") / "other.key")


@dataclass(frozen=True)
class Built:
    out: Path
    output: str


@pytest.fixture(scope="module")
def agent_release(source: Path, release_key: ReleaseKey, tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("agent") / "release"
    result = outpost("release", "build", "-k", release_key.path, "-o", out, "--source", source)
    assert result.exit_code == 0, result.output
    return Built(out, result.output)


def wheels_of(release: Path) -> list[Path]:
    return sorted((release / "wheels").glob("*.whl"))


def test_help_lists_the_release_commands() -> None:
    assert "release" in outpost("--help").output
    result = outpost("release", "--help")
    assert result.exit_code == 0
    for command in ("keygen", "build", "verify"):
        assert command in result.output


# --- keygen -----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("umask_022")
def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "release.key"

    result = outpost("release", "keygen", path)

    assert result.exit_code == 0, result.output
    public = tmp_path / "release.key.pub"
    assert sorted(tmp_path.iterdir()) == [path, public]
    assert path.stat().st_mode & 0o777 == 0o600
    assert public.stat().st_mode & 0o777 == 0o644
    private_pem = path.read_text()
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    identifier = key_id(load_public_key(public.read_bytes()))
    assert key_id(load_private_key(private_pem).public_key()) == identifier
    assert f"release key {identifier}: private {path}\n" in result.output
    assert f"public key: {public} " in result.output


def test_keygen_makes_a_new_key_each_time(tmp_path: Path) -> None:
    assert keygen(tmp_path / "one").key_id != keygen(tmp_path / "two").key_id


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    key = keygen(tmp_path / "release.key")
    before = (key.path.read_bytes(), key.public.read_bytes())

    result = outpost("release", "keygen", key.path)

    assert result.exit_code == 1
    assert errors(result) == [f"error: {key.path} exists: a release key is never overwritten (move it away first)"]
    assert (key.path.read_bytes(), key.public.read_bytes()) == before


def test_keygen_leaves_no_private_key_when_its_public_file_exists(tmp_path: Path) -> None:
    """Else the new private key would lie beside another key's public half."""
    path = tmp_path / "release.key"
    public = tmp_path / "release.key.pub"
    public.write_text("someone else's public key\n")

    result = outpost("release", "keygen", path)

    assert result.exit_code == 1
    assert errors(result) == [f"error: {public} exists: a release key is never overwritten (move it away first)"]
    assert not path.exists()
    assert public.read_text() == "someone else's public key\n"


def test_keygen_into_a_missing_directory_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "release.key"

    result = outpost("release", "keygen", path)

    assert result.exit_code == 1
    assert errors(result) == [f"error: cannot write {path}: No such file or directory"]
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("umask_022")
def test_keygen_encrypts_the_private_key_with_the_password_from_the_environment(tmp_path: Path) -> None:
    key = keygen(tmp_path / "release.key", password=PASSWORD)

    pem = key.path.read_text()
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert key.path.stat().st_mode & 0o777 == 0o600
    assert key_id(load_private_key(pem, PASSWORD.encode()).public_key()) == key.key_id
    with pytest.raises(SigningKeyError):
        load_private_key(pem)


def test_keygen_says_when_the_key_is_encrypted(tmp_path: Path) -> None:
    assert "(encrypted)" in outpost("release", "keygen", tmp_path / "a", password=PASSWORD).output
    assert "(encrypted)" not in outpost("release", "keygen", tmp_path / "b").output
    assert "(encrypted)" not in outpost("release", "keygen", tmp_path / "c", password="").output


@pytest.mark.parametrize("password", [None, "wrong"], ids=["no-password", "wrong-password"])
def test_a_build_with_an_encrypted_key_needs_its_password(tmp_path: Path, password: str | None) -> None:
    key = keygen(tmp_path / "release.key", password=PASSWORD)
    out = tmp_path / "release"

    result = outpost("release", "build", "-k", key.path, "-o", out, "--wheel", tmp_path / "none.whl", password=password)

    assert result.exit_code == 1
    assert errors(result)[0].startswith(f"error: {key.path} is not a usable Ed25519 release key: ")
    assert not out.exists(), "the key is loaded before anything is built"


def test_a_build_with_a_missing_key_fails_clearly(tmp_path: Path) -> None:
    key = tmp_path / "missing.key"

    result = outpost("release", "build", "-k", key, "-o", tmp_path / "release")

    assert result.exit_code == 1
    assert errors(result) == [f"error: cannot read the release key {key}: No such file or directory"]


def test_a_public_key_is_not_a_release_key(tmp_path: Path) -> None:
    key = keygen(tmp_path / "release.key")

    result = outpost("release", "build", "-k", key.public, "-o", tmp_path / "release")

    assert result.exit_code == 1
    assert errors(result)[0].startswith(f"error: {key.public} is not a usable Ed25519 release key")


# --- build: the agent release ---------------------------------------------------------------------------------


def test_the_agent_release_verifies_with_the_release_keys_public_half(
    agent_release: Built, release_key: ReleaseKey
) -> None:
    result = outpost("release", "verify", agent_release.out, "--trust", release_key.public)

    assert result.exit_code == 0, result.output
    files = len(SignedRelease.read(agent_release.out).manifest.files)
    assert result.output == f"ok: agent {VERSION}, {files} files as signed by {release_key.key_id}\n"


def test_the_agent_release_manifest_lists_every_file_and_how_to_install_it(
    agent_release: Built, release_key: ReleaseKey
) -> None:
    release = SignedRelease.read(agent_release.out)
    manifest = release.manifest

    assert release.key_id == release_key.key_id
    assert manifest.kind is ReleaseKind.AGENT
    assert manifest.version == VERSION
    assert manifest.install == f"outpost[edge]=={VERSION}"
    assert manifest.constraints == "constraints.txt"
    assert manifest.platforms == []
    wheels = [f"wheels/{wheel.name}" for wheel in wheels_of(agent_release.out)]
    assert [file.path for file in manifest.files] == ["constraints.txt", *wheels]
    on_disk = sorted(p.relative_to(agent_release.out).as_posix() for p in agent_release.out.rglob("*") if p.is_file())
    assert on_disk == sorted([RELEASE_FILE, "constraints.txt", *wheels])
    assert f"agent release {VERSION}: {len(manifest.files)} files, " in agent_release.output
    assert f"signed by {release_key.key_id}\n" in agent_release.output


def test_the_agent_release_carries_outposts_wheel_of_this_checkout(agent_release: Built, source: Path) -> None:
    own = [wheel for wheel in wheels_of(agent_release.out) if wheel.name.startswith("outpost-")]

    assert [wheel.name for wheel in own] == [f"outpost-{VERSION}-py3-none-any.whl"]
    with zipfile.ZipFile(own[0]) as archive:
        assert archive.read("protocol/releases.py") == (source / "protocol" / "releases.py").read_bytes()
        assert archive.read("outpost_cli/release.py") == (source / "outpost_cli" / "release.py").read_bytes()


def test_the_constraints_pin_every_wheel_exactly_once(agent_release: Built) -> None:
    lines = (agent_release.out / "constraints.txt").read_text().splitlines()
    wheels = wheels_of(agent_release.out)

    pins = []
    for wheel in wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        pins.append(f"{name}=={version}")
    assert sorted(lines) == sorted(pins)
    names = [line.split("==")[0] for line in lines]
    assert len(names) == len(set(names)) == len(wheels)
    for line in lines:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*==[^=\s]+", line), line


def test_the_agent_release_holds_every_dependency_of_outpost_edge(agent_release: Built) -> None:
    pinned = {line.split("==")[0] for line in (agent_release.out / "constraints.txt").read_text().splitlines()}
    needed = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["edge"]]

    assert {canonicalize_name(Requirement(requirement).name) for requirement in needed} <= pinned
    assert "outpost" in pinned
    assert not {"fastapi", "sqlalchemy", "uvicorn"} & pinned, "a gateway's bundle carries no fleet dependencies"


def test_a_release_with_one_byte_changed_fails_to_verify_naming_the_file(
    agent_release: Built, release_key: ReleaseKey, tmp_path: Path
) -> None:
    copy = linked_copy(agent_release.out, tmp_path / "release")
    wheel = min(wheels_of(copy), key=lambda path: path.stat().st_size)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    replace(wheel, bytes(data))

    result = outpost("release", "verify", copy, "--trust", release_key.public)

    assert result.exit_code == 1
    assert errors(result) == [
        f"error: wheels/{wheel.name} does not match the release manifest ({len(data)} bytes, sha256 "
        + errors(result)[0].split(" sha256 ", 1)[1]
    ]
    assert outpost("release", "verify", agent_release.out, "--trust", release_key.public).exit_code == 0


def test_a_release_missing_a_wheel_fails_to_verify_naming_it(
    agent_release: Built, release_key: ReleaseKey, tmp_path: Path
) -> None:
    copy = linked_copy(agent_release.out, tmp_path / "release")
    wheel = wheels_of(copy)[0]
    wheel.unlink()

    result = outpost("release", "verify", copy, "--trust", release_key.public)

    assert result.exit_code == 1
    assert errors(result) == [f"error: cannot read wheels/{wheel.name}: No such file or directory"]


def test_a_release_json_edited_after_signing_fails_to_verify(
    agent_release: Built, release_key: ReleaseKey, tmp_path: Path
) -> None:
    copy = linked_copy(agent_release.out, tmp_path / "release")
    text = (copy / RELEASE_FILE).read_text()
    replace(
        copy / RELEASE_FILE, text.replace(f'"install": "outpost[edge]=={VERSION}"', '"install": "outpost"').encode()
    )

    result = outpost("release", "verify", copy, "--trust", release_key.public)

    assert result.exit_code == 1
    assert errors(result) == [
        f"error: release agent {VERSION} was altered after signing: "
        f"signature does not verify with key {release_key.key_id}"
    ]


def test_a_release_does_not_verify_with_another_key_and_names_both(
    agent_release: Built, release_key: ReleaseKey, other_key: ReleaseKey
) -> None:
    result = outpost("release", "verify", agent_release.out, "--trust", other_key.public)

    assert result.exit_code == 1
    assert errors(result) == [
        f"error: release agent {VERSION} is signed by key {release_key.key_id}, which is not a trusted release key "
        f"(trusted: {other_key.key_id})"
    ]


def test_a_release_verifies_while_its_key_is_one_of_several_trusted(
    agent_release: Built, release_key: ReleaseKey, other_key: ReleaseKey, tmp_path: Path
) -> None:
    trust = tmp_path / "trusted.pem"
    trust.write_text(other_key.public.read_text() + "# the release key\n" + release_key.public.read_text())

    result = outpost("release", "verify", agent_release.out, "--trust", trust)

    assert result.exit_code == 0, result.output


def test_verify_refuses_a_private_key_as_a_trusted_key(agent_release: Built, release_key: ReleaseKey) -> None:
    result = outpost("release", "verify", agent_release.out, "--trust", release_key.path)

    assert result.exit_code == 1
    assert "PRIVATE KEY where a public key belongs" in errors(result)[0]


def test_verify_without_a_release_or_a_trust_file_fails_clearly(release_key: ReleaseKey, tmp_path: Path) -> None:
    no_release = outpost("release", "verify", tmp_path, "--trust", release_key.public)
    no_trust = outpost("release", "verify", tmp_path, "--trust", tmp_path / "missing.pub")

    assert (no_release.exit_code, no_trust.exit_code) == (1, 1)
    assert errors(no_release) == [
        f"error: no release in {tmp_path}: cannot read release.json (No such file or directory)"
    ]
    assert errors(no_trust) == [f"error: cannot read {tmp_path / 'missing.pub'}: No such file or directory"]


def test_a_release_rebuilt_from_a_wheel_over_an_older_release_replaces_it(agent_release: Built, tmp_path: Path) -> None:
    """``--wheel`` instead of the source, an encrypted key, dependencies from ``--find-links``; the old release's
    files go, so none lingers beside the new ones."""
    key = keygen(tmp_path / "encrypted.key", password=PASSWORD)
    wheel = shutil.copy2(next((agent_release.out / "wheels").glob("outpost-*.whl")), tmp_path)
    out = linked_copy(agent_release.out, tmp_path / "release")
    stale = out / "wheels" / "stale-0.0.1-py3-none-any.whl"
    stale.write_bytes(b"left by an older release")
    build = ("release", "build", "-k", key.path, "-o", out, "--wheel", wheel)

    result = outpost(*build, "--find-links", agent_release.out / "wheels", "--notes", "rebuilt", password=PASSWORD)

    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert not any(path.is_symlink() for path in out.rglob("*"))
    release = SignedRelease.read(out)
    assert (release.key_id, release.manifest.notes) == (key.key_id, "rebuilt")
    assert (out / "constraints.txt").read_text() == (agent_release.out / "constraints.txt").read_text()
    assert outpost("release", "verify", out, "--trust", key.public).exit_code == 0
    assert outpost("release", "verify", agent_release.out, "--trust", key.public).exit_code == 1


def test_a_build_into_a_directory_that_is_not_a_release_is_refused(release_key: ReleaseKey, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    result = outpost("release", "build", "-k", release_key.path, "-o", out, "--wheel", tmp_path / "none.whl")

    assert result.exit_code == 1
    assert errors(result) == [f"error: {out} holds more than a release (notes.txt): choose another --out"]
    assert [path.name for path in out.iterdir()] == ["notes.txt"]


def test_a_build_from_a_wheel_that_does_not_exist_fails_in_one_line(release_key: ReleaseKey, tmp_path: Path) -> None:
    wheel = tmp_path / "outpost-9.9.9-py3-none-any.whl"

    result = outpost("release", "build", "-k", release_key.path, "-o", tmp_path / "release", "--wheel", wheel)

    assert result.exit_code == 1
    assert result.output == f"error: no wheel at {wheel}\n"


# --- wheel file names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wheel", "expected"),
    [
        ("outpost-0.1.0-py3-none-any.whl", ("outpost", "0.1.0")),
        ("typing_extensions-4.16.0-py3-none-any.whl", ("typing-extensions", "4.16.0")),
        ("opencv_python_headless-5.1.0.95-cp37-abi3-manylinux_2_28_x86_64.whl", ("opencv-python-headless", "5.1.0.95")),
        ("zope.interface-6.4.post2-cp311-cp311-manylinux_2_17_x86_64.whl", ("zope-interface", "6.4.post2")),
        ("PyYAML-6.0.2-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", ("pyyaml", "6.0.2")),
        ("Foo_Bar.baz-1.0-1-py3-none-any.whl", ("foo-bar-baz", "1.0")),
        ("pkg-2.0rc1-12abc-cp311-cp311-linux_x86_64.whl", ("pkg", "2.0rc1")),
        ("gpiozero-2.0.1.post3-py3-none-any.whl", ("gpiozero", "2.0.1.post3")),
        ("outpost-0.2.0+g1a2b-py3-none-any.whl", ("outpost", "0.2.0+g1a2b")),
        ("colorzero-2.0-py2.py3-none-any.whl", ("colorzero", "2.0")),
    ],
)  # fmt: skip
def test_a_wheels_name_and_version_come_from_its_file_name(wheel: str, expected: tuple[str, str]) -> None:
    assert wheel_name_version(Path("wheels") / wheel) == expected
    name, version, _, _ = parse_wheel_filename(wheel)
    assert (name, str(version)) == expected, "as pip's own packaging reads it"


@pytest.mark.parametrize(
    "wheel",
    ["outpost-0.1.0.tar.gz", "outpost-0.1.0-py3-none.whl", "outpost.whl", "outpost-0.1.0-x-1-py3-none-any.whl", ""],
)
def test_a_file_name_that_is_no_wheels_is_refused(wheel: str) -> None:
    with pytest.raises(ReleaseBuildError, match="is not a wheel's file name"):
        wheel_name_version(Path(wheel))


def test_a_build_into_a_file_or_from_a_wheel_inside_its_own_out_is_refused_in_one_line(
    release_key: ReleaseKey, tmp_path: Path
) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    into_file = outpost("release", "build", "-k", release_key.path, "-o", a_file, "--wheel", tmp_path / "x.whl")
    assert into_file.exit_code == 1
    assert errors(into_file) == [f"error: {a_file} is a file: --out names the directory to build the release in"]

    out = tmp_path / "release"
    (out / "wheels").mkdir(parents=True)
    wheel = out / "wheels" / "outpost-0.2.0-py3-none-any.whl"
    wheel.write_bytes(b"not really")
    inside = outpost("release", "build", "-k", release_key.path, "-o", out, "--wheel", wheel)
    assert inside.exit_code == 1
    assert errors(inside) == [f"error: --wheel {wheel} is inside --out {out}, which the build empties first"]
    assert wheel.read_bytes() == b"not really"

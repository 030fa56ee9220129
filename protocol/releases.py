"""Releases: what an update is made of, signed with an Ed25519 release key, and checked file by file.

A release is a directory of files (the agent's wheels, or a sensor node's ``.mpy`` set) and one more,
``release.json``, holding :class:`SignedRelease`: the :class:`ReleaseManifest` (kind, version, every file's
path, size and SHA-256) and the release key's signature over it. The signature covers the canonical JSON
(:func:`protocol.config_signing.canonical_bytes`) of::

    {"purpose": "outpost/release/v1", "manifest": <ReleaseManifest.model_dump(mode="json")>}

so it binds every file's hash to the kind and version, and can never be taken for a config or a command
signature (those documents name other purposes). The release key is not the fleet's config key: whoever
builds releases holds it; the fleet and the gateways hold only its public half, and both check every
release against it (the fleet when a release is uploaded, a gateway before it installs a byte of it).

Paths are relative, ``/``-separated, made of safe characters, without ``.`` or ``..`` parts, so a manifest
cannot name a file outside its release directory wherever it is unpacked. Every number is bounded.
"""

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Final, Literal, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from protocol.bounds import MAX_EPOCH_MS
from protocol.config_signing import key_id, sign_document, verify_document
from protocol.errors import ConfigSignatureError, ReleaseFileError, ReleaseSignatureError
from protocol.identifiers import KEY_ID_PATTERN
from protocol.messages import SIGNATURE_PATTERN
from protocol.updates import ReleaseKind, ReleaseVersion

RELEASE_SCHEMA_VERSION: Final = 1
RELEASE_PURPOSE: Final = "outpost/release/v1"
RELEASE_FILE: Final = "release.json"
"""The signed manifest's file name in a release directory; never listed in the manifest itself."""
MAX_RELEASE_FILES: Final = 1_000
MAX_RELEASE_FILE_BYTES: Final = 512 * 1024 * 1024
"""One file of a release: a dependency wheel (opencv's is about 50 MB) fits many times over."""
MAX_RELEASE_FILE_JSON_BYTES: Final = 512 * 1024
"""``release.json`` itself: a thousand files' entries at about 200 bytes each, with room to spare."""
_CHUNK: Final = 1024 * 1024

RELEASE_PATH_PATTERN: Final = r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,127}(/[A-Za-z0-9_+][A-Za-z0-9._+-]{0,127}){0,7}$"
_RELEASE_PATH_RE: Final = re.compile(RELEASE_PATH_PATTERN)
ReleasePath = Annotated[str, StringConstraints(pattern=RELEASE_PATH_PATTERN)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ReleaseFile(_Strict):
    path: ReleasePath
    size: int = Field(ge=0, le=MAX_RELEASE_FILE_BYTES, strict=True)
    sha256: Sha256Hex


class ReleaseManifest(_Strict):
    """What a release holds; :class:`SignedRelease` carries it with its signature."""

    schema_version: Literal[1] = RELEASE_SCHEMA_VERSION
    kind: ReleaseKind
    version: ReleaseVersion
    created_ms: int = Field(ge=0, le=MAX_EPOCH_MS)
    install: str = Field(
        default="",
        max_length=256,
        description="Agent: the requirement pip installs from the bundle alone (``outpost[edge]==0.2.0``); "
        "firmware: empty.",
    )
    constraints: ReleasePath | None = Field(
        default=None, description="Agent: the file pinning every dependency's version (pip's ``--constraint``)."
    )
    platforms: list[Annotated[str, StringConstraints(max_length=128)]] = Field(
        default_factory=list,
        max_length=16,
        description="Agent: the wheel platform tags the bundle was built for (``manylinux2014_aarch64``).",
    )
    notes: str = Field(default="", max_length=4_000)
    files: list[ReleaseFile] = Field(min_length=1, max_length=MAX_RELEASE_FILES)

    @model_validator(mode="after")
    def _paths_unique_and_known(self) -> Self:
        paths = [file.path for file in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("a release lists a file twice")
        if RELEASE_FILE in paths:
            raise ValueError(f"{RELEASE_FILE} is the signed manifest, never one of its files")
        if self.constraints is not None and self.constraints not in paths:
            raise ValueError(f"the constraints file {self.constraints} is not one of the release's files")
        return self

    @property
    def total_size(self) -> int:
        return sum(file.size for file in self.files)

    def file(self, path: str) -> ReleaseFile | None:
        return next((file for file in self.files if file.path == path), None)


class SignedRelease(_Strict):
    """``release.json``: a manifest and the release key's signature over it."""

    schema_version: Literal[1] = RELEASE_SCHEMA_VERSION
    manifest: ReleaseManifest
    key_id: Annotated[str, StringConstraints(pattern=KEY_ID_PATTERN)]
    signature: Annotated[str, StringConstraints(pattern=SIGNATURE_PATTERN)]

    @classmethod
    def read(cls, directory: Path) -> Self:
        """The release in ``directory``; :class:`ReleaseFileError` if its ``release.json`` is missing or unreadable."""
        path = directory / RELEASE_FILE
        try:
            with path.open("rb") as file:
                data = file.read(MAX_RELEASE_FILE_JSON_BYTES + 1)
        except OSError as exc:
            raise ReleaseFileError(f"no release in {directory}: cannot read {RELEASE_FILE} ({exc.strerror})") from exc
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: bytes, where: str = RELEASE_FILE) -> Self:
        if len(data) > MAX_RELEASE_FILE_JSON_BYTES:
            raise ReleaseFileError(f"{where} is larger than {MAX_RELEASE_FILE_JSON_BYTES} bytes")
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(str(part) for part in first.get("loc", ())) or "the document"
            raise ReleaseFileError(f"{where} is not a release manifest: {at}: {first.get('msg', '')}"[:300]) from exc

    def dump(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode("utf-8")


def is_release_path(path: str) -> bool:
    return _RELEASE_PATH_RE.fullmatch(path) is not None and path != RELEASE_FILE


def _document(manifest: ReleaseManifest) -> dict[str, object]:
    return {"purpose": RELEASE_PURPOSE, "manifest": manifest.model_dump(mode="json")}


def sign_release(private_key: Ed25519PrivateKey, manifest: ReleaseManifest) -> SignedRelease:
    signature = sign_document(private_key, _document(manifest))
    return SignedRelease(manifest=manifest, key_id=key_id(private_key.public_key()), signature=signature)


def verify_release(trusted: Sequence[Ed25519PublicKey], release: SignedRelease) -> Ed25519PublicKey:
    """The trusted key that signed ``release``; :class:`ReleaseSignatureError` if none of ``trusted`` did."""
    if not trusted:
        raise ReleaseSignatureError("no release key is trusted here: nothing can be verified")
    for key in trusted:
        if key_id(key) != release.key_id:
            continue
        try:
            verify_document(key, _document(release.manifest), release.signature)
        except ConfigSignatureError as exc:
            raise ReleaseSignatureError(
                f"release {release.manifest.kind} {release.manifest.version} was altered after signing: {exc}"
            ) from None
        return key
    known = ", ".join(key_id(key) for key in trusted)
    raise ReleaseSignatureError(
        f"release {release.manifest.kind} {release.manifest.version} is signed by key {release.key_id}, "
        f"which is not a trusted release key (trusted: {known})"
    )


def file_sha256(path: Path, limit: int = MAX_RELEASE_FILE_BYTES, name: str | None = None) -> tuple[int, str]:
    """The size and SHA-256 of ``path`` read in chunks; :class:`ReleaseFileError` past ``limit`` bytes.
    Errors call the file ``name`` (its path in a release), else ``path``."""
    called = name or str(path)
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ReleaseFileError(f"{called} is larger than {limit} bytes")
                digest.update(chunk)
    except OSError as exc:
        raise ReleaseFileError(f"cannot read {called}: {exc.strerror}") from exc
    return size, digest.hexdigest()


def check_file(directory: Path, expected: ReleaseFile) -> None:
    """Return if ``directory``/``expected.path`` has the size and hash the manifest says; else ReleaseFileError."""
    size, sha256 = file_sha256(directory / expected.path, expected.size, expected.path)
    if size != expected.size or sha256 != expected.sha256:
        raise ReleaseFileError(
            f"{expected.path} does not match the release manifest ({size} bytes, sha256 {sha256[:12]}…; "
            f"expected {expected.size} bytes, {expected.sha256[:12]}…)"
        )


def check_files(directory: Path, manifest: ReleaseManifest) -> None:
    """Return if every file of ``manifest`` is in ``directory`` as signed; else the first that is not."""
    for expected in manifest.files:
        check_file(directory, expected)


def describe(directory: Path, paths: Sequence[str]) -> list[ReleaseFile]:
    """Manifest entries for ``paths`` (relative to ``directory``), read and hashed now."""
    entries = []
    for relative in paths:
        if not is_release_path(relative):
            raise ReleaseFileError(f"{relative!r} cannot be a release file's path (safe characters, no . or ..)")
        size, sha256 = file_sha256(directory / relative)
        entries.append(ReleaseFile(path=relative, size=size, sha256=sha256))
    return entries

"""Routes for releases: upload one (its signed manifest, then each file), list and read them, remove one, and
serve their files to gateways.

Uploading and removing need an admin token. Reading a release's description needs the read permission.
Its files (``release.json`` and each file the manifest lists) are served to a reader's token and to any
enrolled, unrevoked gateway signing its request with its own key (:mod:`protocol.gateway_requests`), with HTTP
range requests, so a gateway on a flaky link resumes a download where it stopped.
"""

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security, status
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from fleet.access.roles import Permission
from fleet.api.context import CALLER_RESPONSES, Administrator, Allowed, Context, Reader
from fleet.api.schemas import Refusal
from fleet.errors import ConflictError, NotAuthenticatedError, NotFoundError, PermissionDeniedError
from fleet.releases.store import StoredRelease
from protocol.config_signing import load_public_key
from protocol.errors import GatewayRequestError, SigningKeyError
from protocol.gateway_requests import is_gateway_authorization, parse_authorization, verify_request
from protocol.releases import RELEASE_PATH_PATTERN, SignedRelease
from protocol.request_signing import asgi_request_target
from protocol.updates import RELEASE_VERSION_PATTERN, ReleaseKind

router = APIRouter(tags=["releases"], responses=CALLER_RESPONSES)

PREFIX: Final = "/releases/"
"""Where release files are uploaded (``PUT``): the request guard's larger body cap applies below it."""
VersionPath = Annotated[str, Path(pattern=RELEASE_VERSION_PATTERN)]
FilePath = Annotated[str, Path(pattern=RELEASE_PATH_PATTERN)]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "No such release (or file)"}}
_MAX_MISSING_SHOWN: Final = 1_000


class ReleasePublic(BaseModel):
    kind: ReleaseKind
    version: str
    state: Literal["uploading", "ready"]
    key_id: str
    files: int
    total_size: int
    created_ms: int
    uploaded_ms: int
    uploaded_by: str
    ready_ms: int | None
    install: str
    notes: str
    missing: list[str]
    """Files still to upload (at most 1,000 shown)."""

    @classmethod
    def of(cls, stored: StoredRelease) -> "ReleasePublic":
        row, manifest = stored.row, stored.release.manifest
        return cls(
            kind=manifest.kind,
            version=manifest.version,
            state="ready" if stored.ready else "uploading",
            key_id=row.key_id,
            files=row.file_count,
            total_size=row.total_size,
            created_ms=row.created_ms,
            uploaded_ms=row.uploaded_ms,
            uploaded_by=row.uploaded_by,
            ready_ms=row.ready_ms,
            install=manifest.install,
            notes=manifest.notes,
            missing=stored.missing[:_MAX_MISSING_SHOWN],
        )


@router.post(
    "/releases",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Registered before with this manifest"},
        409: {"description": "Another one"},
        422: {"model": Refusal, "description": "Not signed by a trusted release key, or not a release manifest"},
    },
)
async def register_release(
    ctx: Context, actor: Administrator, release: SignedRelease, response: Response
) -> ReleasePublic:
    """Register a release by its signed manifest (``release.json``), checked against the release keys the fleet
    trusts; then upload each file it lists. Sending it again is harmless: the answer lists the files missing."""
    stored, new = await ctx.releases.register(actor, release)
    if not new:
        response.status_code = status.HTTP_200_OK
    return ReleasePublic.of(stored)


@router.put(
    "/releases/{kind}/{version}/files/{path:path}",
    responses={**_UNKNOWN, 422: {"model": Refusal, "description": "Not the file the manifest signs"}},
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def upload_release_file(
    ctx: Context, _: Administrator, request: Request, kind: ReleaseKind, version: VersionPath, path: FilePath
) -> ReleasePublic:
    """Upload one file of a registered release (the raw bytes); taken only if its size and SHA-256 are those of
    the signed manifest. The release is ready once every file is in."""
    return ReleasePublic.of(await ctx.releases.receive(kind, version, path, request.stream()))


@router.get("/releases")
async def list_releases(
    ctx: Context, _: Reader, kind: Annotated[ReleaseKind | None, Query()] = None
) -> list[ReleasePublic]:
    """Every release the fleet keeps, newest built first within each kind."""
    return [ReleasePublic.of(stored) for stored in await ctx.releases.list(kind)]


@router.get("/releases/{kind}/{version}", responses=_UNKNOWN)
async def read_release(ctx: Context, _: Reader, kind: ReleaseKind, version: VersionPath) -> ReleasePublic:
    return ReleasePublic.of(await ctx.releases.get(kind, version))


@router.delete(
    "/releases/{kind}/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_UNKNOWN, 409: {"description": "An open job installs it"}},
)
async def delete_release(ctx: Context, actor: Administrator, kind: ReleaseKind, version: VersionPath) -> None:
    """Remove a release and its files (audited); refused while an open job installs it."""
    if kind is ReleaseKind.AGENT:
        using = [job.id for job in await ctx.jobs.store.jobs(open_only=True, limit=1_000) if job.version == version]
        if using:
            raise ConflictError(f"job {', '.join(using)} installs agent {version}: cancel it first")
    await ctx.releases.delete(actor, kind, version)


_bearer = HTTPBearer(auto_error=False)
_reader = Allowed(Permission.READ)


async def _gateway_or_reader(
    request: Request, ctx: Context, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> str:
    """Who is downloading: an enrolled, unrevoked gateway signing with its key, or a reader's token."""
    header = request.headers.get("authorization", "")
    if not is_gateway_authorization(header):
        return (await _reader(request, ctx, credentials)).name
    refused = NotAuthenticatedError("the request is not signed by an enrolled gateway's key")
    try:
        claimed = parse_authorization(header)
    except GatewayRequestError as exc:
        raise NotAuthenticatedError(str(exc)) from exc
    gateway = await ctx.registry.gateway(claimed.gateway_id)
    if gateway is None or gateway.public_key_pem is None:
        raise refused  # the same answer as a bad signature: who is enrolled is nobody's business
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    target = asgi_request_target(raw_path, request.scope["query_string"])
    try:
        verify_request(load_public_key(gateway.public_key_pem), claimed, request.method, target, ctx.clock())
    except GatewayRequestError as exc:
        raise (NotAuthenticatedError(str(exc)) if "clock" in str(exc) else refused) from exc
    except SigningKeyError as exc:
        raise refused from exc
    if gateway.revoked_ms is not None:
        raise PermissionDeniedError(f"gateway {claimed.gateway_id} is revoked")
    return f"gateway:{claimed.gateway_id}"


Downloader = Annotated[str, Depends(_gateway_or_reader)]


@router.get("/releases/{kind}/{version}/release.json", responses=_UNKNOWN, response_class=Response)
async def download_manifest(ctx: Context, _: Downloader, kind: ReleaseKind, version: VersionPath) -> Response:
    """The release's signed manifest, for a gateway to check before it downloads the rest (as the fleet registered
    it: from its record, never a file that might have changed beside it)."""
    stored = await ctx.releases.get(kind, version)
    if not stored.ready:
        raise NotFoundError(f"{kind} release {version} is still being uploaded")
    return Response(stored.row.signed.encode("utf-8"), media_type="application/json")


@router.get("/releases/{kind}/{version}/files/{path:path}", responses=_UNKNOWN, response_class=FileResponse)
async def download_file(
    ctx: Context, _: Downloader, kind: ReleaseKind, version: VersionPath, path: FilePath
) -> FileResponse:
    """One file of a ready release; ``Range: bytes=N-`` resumes a download (206 Partial Content)."""
    found = await ctx.releases.served_file(kind, version, path)
    return FileResponse(found, media_type="application/octet-stream")

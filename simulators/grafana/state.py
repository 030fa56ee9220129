"""What the Grafana imitation holds (folders, dashboards, every saved version) and the rules Grafana saves them by.

The rules follow Grafana 11's legacy dashboard and folder services (``pkg/services/dashboards``,
``pkg/services/folder``), with the status codes and messages their HTTP API answers:

- a dashboard needs a non-empty ``title`` (400 "Dashboard title cannot be empty");
- a uid is letters, digits, ``-`` and ``_`` (400 "uid contains illegal characters") of at most 40
  characters (400 "uid too long, max 40 characters"); a missing uid is generated;
- ``folderUid`` (or ``folderId``) must name an existing folder (400 "folder not found"); neither puts
  the dashboard in General (and moves an existing one there, as Grafana does);
- saving over an existing uid without ``overwrite`` needs the stored ``version`` (else 412
  ``version-mismatch``); with ``overwrite`` the stored version is taken; either way the saved version
  is the stored one plus one, a new dashboard's is 1;
- without ``overwrite``, another dashboard with the same title in the same folder is 412
  ``name-exists`` (with ``overwrite`` this imitation keeps both, where old Grafana versions replaced
  the other dashboard: the push never relies on either);
- folders: uid rules as above, a non-empty title, a uid or a title already taken at the same level
  is 409; a folder update without ``overwrite`` must carry the current version (412).

Folders and dashboards share one id sequence, as they share Grafana's ``dashboard`` table.
"""

import copy
import re
import secrets
import string
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

Clock = Callable[[], datetime]

GENERAL_FOLDER_TITLE: Final = "General"
_UID_CHARACTERS: Final = re.compile(r"[A-Za-z0-9_-]*")
_MAX_UID_LENGTH: Final = 40
_GENERATED_UID_LENGTH: Final = 14
_UID_ALPHABET: Final = string.ascii_lowercase + string.digits
_SLUG_SEPARATORS: Final = re.compile(r"[^a-z0-9]+")
_SEARCH_DEFAULT_LIMIT: Final = 1000
_SEARCH_MAX_LIMIT: Final = 5000
_ACTOR: Final = "service-account"


class GrafanaRefusal(Exception):
    """An answer Grafana gives instead of doing what was asked: the status and Grafana's JSON body."""

    def __init__(self, http_status: int, message: str, /, **extra: Any) -> None:
        super().__init__(f"{http_status} {message}")
        self.http_status = http_status
        self.body: dict[str, Any] = {"message": message, **extra}


def slugify(title: str) -> str:
    """Grafana's URL slug for a title: ASCII, lower case, runs of anything else as one ``-``."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return _SLUG_SEPARATORS.sub("-", ascii_title.lower()).strip("-")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class StoredFolder:
    id: int
    uid: str
    title: str
    parent_uid: str | None
    description: str
    version: int
    created: datetime
    updated: datetime

    @property
    def url(self) -> str:
        return f"/dashboards/f/{self.uid}/{slugify(self.title)}"

    def as_json(self) -> dict[str, Any]:
        """``GET /api/folders/:uid``'s answer."""
        body: dict[str, Any] = {
            "id": self.id,
            "uid": self.uid,
            "orgId": 1,
            "title": self.title,
            "description": self.description,
            "url": self.url,
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "canDelete": True,
            "createdBy": _ACTOR,
            "created": _stamp(self.created),
            "updatedBy": _ACTOR,
            "updated": _stamp(self.updated),
            "version": self.version,
        }
        if self.parent_uid is not None:
            body["parentUid"] = self.parent_uid
        return body


@dataclass
class StoredDashboard:
    id: int
    uid: str
    title: str
    folder_uid: str | None
    """None: the General folder (root)."""
    version: int
    data: dict[str, Any]
    """The dashboard JSON as Grafana stores it: as sent, with ``id``, ``uid``, ``title`` and ``version`` set."""
    created: datetime
    updated: datetime

    @property
    def slug(self) -> str:
        return slugify(self.title)

    @property
    def url(self) -> str:
        return f"/d/{self.uid}/{self.slug}"

    @property
    def tags(self) -> list[str]:
        tags = self.data.get("tags")
        return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """One successful ``POST /api/dashboards/db``, as the dashboard's version history records it."""

    uid: str
    version: int
    folder_uid: str | None
    message: str
    overwrite: bool
    created: bool
    """Whether this save created the dashboard."""


@dataclass
class GrafanaState:
    """One organisation's folders and dashboards; one event loop uses it."""

    clock: Clock = utc_now
    folders: dict[str, StoredFolder] = field(default_factory=dict)
    dashboards: dict[str, StoredDashboard] = field(default_factory=dict)
    history: list[SavedVersion] = field(default_factory=list)
    _last_id: int = 0

    # --- folders ---------------------------------------------------------------------------------

    def folder(self, uid: str) -> StoredFolder:
        found = self.folders.get(uid)
        if found is None:
            raise GrafanaRefusal(HTTPStatus.NOT_FOUND, "folder not found")
        return found

    def folder_list(self, parent_uid: str | None, limit: int, page: int) -> list[dict[str, Any]]:
        """``GET /api/folders``: the folders directly under ``parent_uid`` (None: the root), by title."""
        children = sorted((f for f in self.folders.values() if f.parent_uid == parent_uid), key=_title_key)
        start = (page - 1) * limit
        return [{"id": f.id, "uid": f.uid, "title": f.title} for f in children[start : start + limit]]

    def create_folder(self, body: Any) -> StoredFolder:
        fields = _object(body)
        title = _text(fields.get("title")).strip()
        uid = _text(fields.get("uid")).strip() or self._generate_uid()
        parent_uid = _text(fields.get("parentUid")).strip() or None
        description = _text(fields.get("description"))
        if not title:
            raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "folder title cannot be empty")
        _check_uid(uid)
        if parent_uid is not None:
            self.folder(parent_uid)
        if uid in self.folders or uid in self.dashboards:
            raise GrafanaRefusal(HTTPStatus.CONFLICT, "a folder/dashboard with the same uid already exists")
        self._refuse_folder_title(title, parent_uid, except_uid=None)
        now = self.clock()
        folder = StoredFolder(self._new_id(), uid, title, parent_uid, description, 1, now, now)
        self.folders[uid] = folder
        return folder

    def update_folder(self, uid: str, body: Any) -> StoredFolder:
        fields = _object(body)
        folder = self.folder(uid)
        overwrite = fields.get("overwrite") is True
        version = fields.get("version")
        if not overwrite and version != folder.version:
            raise GrafanaRefusal(
                HTTPStatus.PRECONDITION_FAILED, "the folder has been changed by someone else", status="version-mismatch"
            )
        title = _text(fields.get("title")).strip()
        if title:
            self._refuse_folder_title(title, folder.parent_uid, except_uid=uid)
            folder.title = title
        if "description" in fields:
            folder.description = _text(fields.get("description"))
        folder.version += 1
        folder.updated = self.clock()
        return folder

    def _refuse_folder_title(self, title: str, parent_uid: str | None, *, except_uid: str | None) -> None:
        for other in self.folders.values():
            if other.uid != except_uid and other.parent_uid == parent_uid and other.title.lower() == title.lower():
                raise GrafanaRefusal(
                    HTTPStatus.CONFLICT, "a folder or dashboard in the general folder with the same name already exists"
                )

    # --- dashboards ------------------------------------------------------------------------------

    def dashboard(self, uid: str) -> StoredDashboard:
        found = self.dashboards.get(uid)
        if found is None:
            raise GrafanaRefusal(HTTPStatus.NOT_FOUND, "Dashboard not found", status="not-found")
        return found

    def dashboard_json(self, uid: str) -> dict[str, Any]:
        """``GET /api/dashboards/uid/:uid``'s answer: the stored JSON and its ``meta``."""
        dashboard = self.dashboard(uid)
        folder = self.folders.get(dashboard.folder_uid) if dashboard.folder_uid is not None else None
        meta = {
            "type": "db",
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "canStar": True,
            "canDelete": True,
            "slug": dashboard.slug,
            "url": dashboard.url,
            "expires": "0001-01-01T00:00:00Z",
            "created": _stamp(dashboard.created),
            "updated": _stamp(dashboard.updated),
            "updatedBy": _ACTOR,
            "createdBy": _ACTOR,
            "version": dashboard.version,
            "hasAcl": False,
            "isFolder": False,
            "folderId": folder.id if folder is not None else 0,
            "folderUid": folder.uid if folder is not None else "",
            "folderTitle": folder.title if folder is not None else GENERAL_FOLDER_TITLE,
            "folderUrl": folder.url if folder is not None else "",
            "provisioned": False,
            "provisionedExternalId": "",
        }
        return {"dashboard": copy.deepcopy(dashboard.data), "meta": meta}

    def save_dashboard(self, body: Any) -> StoredDashboard:
        """``POST /api/dashboards/db`` by the rules in the module's docstring; records a :class:`SavedVersion`."""
        fields = _object(body)
        data = fields.get("dashboard")
        if not isinstance(data, dict):
            raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "bad request data")
        overwrite = fields.get("overwrite") is True
        message = _text(fields.get("message"))
        title = _text(data.get("title")).strip()
        if not title:
            raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "Dashboard title cannot be empty")
        uid = _text(data.get("uid")).strip()
        _check_uid(uid)
        folder_uid = self._folder_for_dashboard(fields)
        existing = self._existing_dashboard(uid, data.get("id"))
        sent_version = data.get("version")
        sent_version = sent_version if isinstance(sent_version, int) and not isinstance(sent_version, bool) else 0
        if existing is not None and sent_version != existing.version and not overwrite:
            raise GrafanaRefusal(
                HTTPStatus.PRECONDITION_FAILED,
                "The dashboard has been changed by someone else",
                status="version-mismatch",
            )
        uid = existing.uid if existing is not None else (uid or self._generate_uid())
        if not overwrite:
            for other in self.dashboards.values():
                if other.uid != uid and other.folder_uid == folder_uid and other.title.lower() == title.lower():
                    raise GrafanaRefusal(
                        HTTPStatus.PRECONDITION_FAILED,
                        "A dashboard with the same name in the folder already exists",
                        status="name-exists",
                    )
        now = self.clock()
        stored = copy.deepcopy(data)
        if existing is None:
            saved = StoredDashboard(self._new_id(), uid, title, folder_uid, 1, stored, now, now)
        else:
            saved = existing
            saved.title, saved.folder_uid, saved.version, saved.data, saved.updated = (
                title,
                folder_uid,
                existing.version + 1,
                stored,
                now,
            )
        stored.update({"id": saved.id, "uid": saved.uid, "title": title, "version": saved.version})
        self.dashboards[uid] = saved
        self.history.append(SavedVersion(uid, saved.version, folder_uid, message, overwrite, existing is None))
        return saved

    def save_answer(self, saved: StoredDashboard) -> dict[str, Any]:
        """``POST /api/dashboards/db``'s answer for a successful save."""
        return {
            "id": saved.id,
            "uid": saved.uid,
            "url": saved.url,
            "status": "success",
            "version": saved.version,
            "slug": saved.slug,
            "folderUid": saved.folder_uid or "",
        }

    def _folder_for_dashboard(self, fields: dict[str, Any]) -> str | None:
        folder_uid = _text(fields.get("folderUid")).strip()
        if folder_uid:
            if folder_uid not in self.folders:
                raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "folder not found")
            return folder_uid
        folder_id = fields.get("folderId")
        if isinstance(folder_id, int) and folder_id != 0:
            for folder in self.folders.values():
                if folder.id == folder_id:
                    return folder.uid
            raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "folder not found")
        return None

    def _existing_dashboard(self, uid: str, sent_id: Any) -> StoredDashboard | None:
        by_uid = self.dashboards.get(uid) if uid else None
        if not isinstance(sent_id, int) or isinstance(sent_id, bool) or sent_id == 0:
            return by_uid
        by_id = next((d for d in self.dashboards.values() if d.id == sent_id), None)
        if by_id is None:
            raise GrafanaRefusal(HTTPStatus.NOT_FOUND, "Dashboard not found", status="not-found")
        if by_uid is not None and by_uid is not by_id:
            raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "A dashboard with the same uid already exists")
        return by_id

    # --- search ----------------------------------------------------------------------------------

    def search(
        self,
        *,
        kind: str | None,
        query: str,
        folder_uids: Iterable[str],
        dashboard_uids: Iterable[str],
        limit: int | None,
    ) -> list[dict[str, Any]]:
        """``GET /api/search``: folders (``dash-folder``) and/or dashboards (``dash-db``), by title."""
        wanted_folders = set(folder_uids)
        wanted_dashboards = set(dashboard_uids)
        needle = query.lower()
        hits: list[dict[str, Any]] = []
        if kind in (None, "dash-folder") and not wanted_dashboards:
            hits += [
                self._folder_hit(f)
                for f in self.folders.values()
                if needle in f.title.lower() and (not wanted_folders or (f.parent_uid or "general") in wanted_folders)
            ]
        if kind in (None, "dash-db"):
            hits += [
                self._dashboard_hit(d)
                for d in self.dashboards.values()
                if needle in d.title.lower()
                and (not wanted_folders or (d.folder_uid or "general") in wanted_folders)
                and (not wanted_dashboards or d.uid in wanted_dashboards)
            ]
        hits.sort(key=lambda hit: (hit["title"].lower(), hit["uid"]))
        count = _SEARCH_DEFAULT_LIMIT if limit is None else min(max(limit, 1), _SEARCH_MAX_LIMIT)
        return hits[:count]

    def _folder_hit(self, folder: StoredFolder) -> dict[str, Any]:
        return {
            "id": folder.id,
            "uid": folder.uid,
            "orgId": 1,
            "title": folder.title,
            "uri": f"db/{slugify(folder.title)}",
            "url": folder.url,
            "slug": "",
            "type": "dash-folder",
            "tags": [],
            "isStarred": False,
            "sortMeta": 0,
        }

    def _dashboard_hit(self, dashboard: StoredDashboard) -> dict[str, Any]:
        hit: dict[str, Any] = {
            "id": dashboard.id,
            "uid": dashboard.uid,
            "orgId": 1,
            "title": dashboard.title,
            "uri": f"db/{dashboard.slug}",
            "url": dashboard.url,
            "slug": "",
            "type": "dash-db",
            "tags": dashboard.tags,
            "isStarred": False,
            "sortMeta": 0,
        }
        folder = self.folders.get(dashboard.folder_uid) if dashboard.folder_uid is not None else None
        if folder is not None:
            hit |= {
                "folderId": folder.id,
                "folderUid": folder.uid,
                "folderTitle": folder.title,
                "folderUrl": folder.url,
            }
        return hit

    # --- ids -------------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _generate_uid(self) -> str:
        while True:
            uid = "".join(secrets.choice(_UID_ALPHABET) for _ in range(_GENERATED_UID_LENGTH))
            if uid not in self.folders and uid not in self.dashboards:
                return uid


def _title_key(folder: StoredFolder) -> tuple[str, str]:
    return folder.title.lower(), folder.uid


def _object(body: Any) -> dict[str, Any]:
    """The request's JSON object; anything else is what Grafana's binder refuses as "bad request data"."""
    if not isinstance(body, dict):
        raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "bad request data")
    return body


def _text(value: Any) -> str:
    """A string field; absent and null read as empty, any other type is bad request data."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "bad request data")
    return value


def _check_uid(uid: str) -> None:
    if _UID_CHARACTERS.fullmatch(uid) is None:
        raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "uid contains illegal characters")
    if len(uid) > _MAX_UID_LENGTH:
        raise GrafanaRefusal(HTTPStatus.BAD_REQUEST, "uid too long, max 40 characters")

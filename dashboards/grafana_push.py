"""Publishing generated dashboards to a running Grafana over its HTTP API, idempotently.

``push(dashboards, url, token, counties, flavour=...)`` ensures a folder per county
(``outpost-<county>``, "Outpost · <name>"; without counties one folder ``outpost``, "Outpost") and
saves each dashboard of the chosen flavour into it under a uid derived from its own and the county's
(:mod:`dashboards.county_copies`), with the ``county`` variable opening on that county. The same
inputs always give the same folders and uids, so pushing again updates in place: no duplicates.

A dashboard Grafana already holds with the same content in the same folder is left alone
(``unchanged``; its version does not move) unless ``force``; anything else is saved with
``overwrite`` (Grafana bumps its version). Every failure is a :class:`~dashboards.errors.DashboardsError`
saying what was being done: a refused token stops the push at its first request.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from dashboards.county_copies import SHARED_FOLDER, County, Folder, county_dashboard_uid, county_folder, for_county
from dashboards.errors import DashboardsError, GrafanaPushError
from dashboards.grafana_http import GrafanaHttp
from dashboards.model import Flavour, GeneratedDashboard

logger = logging.getLogger(__name__)

DEFAULT_MESSAGE: Final = "published by outpost dashboards push"
_IGNORED_WHEN_COMPARING: Final = ("id", "version")  # Grafana sets both on save


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class FolderResult:
    uid: str
    title: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class PushedDashboard:
    """One dashboard as Grafana holds it after the push."""

    source_uid: str
    """The generated dashboard's uid."""
    county: str | None
    """The county id this copy opens on; None without counties."""
    uid: str
    folder_uid: str
    title: str
    outcome: Outcome
    version: int | None
    """Grafana's version after the push (for ``unchanged``, the version it already had)."""
    url: str
    """The dashboard's address on the Grafana (absolute)."""


@dataclass(frozen=True, slots=True)
class PushReport:
    grafana_url: str
    flavour: Flavour
    folders: tuple[FolderResult, ...]
    dashboards: tuple[PushedDashboard, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for pushed in self.dashboards if pushed.outcome is outcome)

    def lines(self) -> list[str]:
        """A human summary, one line per folder and dashboard, then the totals."""
        lines = [f"folder {f.uid} ({f.title}): {f.outcome.value}" for f in self.folders]
        for d in self.dashboards:
            where = f"county {d.county}" if d.county is not None else "all counties"
            lines.append(f"dashboard {d.uid} ({d.title}, {where}): {d.outcome.value}, version {d.version} {d.url}")
        totals = ", ".join(f"{self.count(outcome)} {outcome.value}" for outcome in Outcome)
        lines.append(f"{len(self.dashboards)} {self.flavour.value} dashboards on {self.grafana_url}: {totals}")
        return lines


def push(
    dashboards: Iterable[GeneratedDashboard],
    grafana_url: str,
    token: str,
    counties: Sequence[County] = (),
    *,
    flavour: Flavour,
    verify_tls: bool = True,
    timeout_s: float = 10.0,
    force: bool = False,
    message: str = DEFAULT_MESSAGE,
) -> PushReport:
    """Publish the ``flavour`` dashboards among ``dashboards`` to the Grafana at ``grafana_url``.

    ``token`` is a service-account token with the Editor role (it creates folders and dashboards).
    ``counties``: a folder and a copy of every dashboard per county; none: one shared folder and the
    dashboards as generated. ``force`` saves even unchanged dashboards (their versions advance).
    Synchronous (grafana-client is); from async code use ``await asyncio.to_thread(push, ...)``.

    Raises :class:`~dashboards.errors.GrafanaAuthError` (token refused or not allowed),
    :class:`~dashboards.errors.GrafanaUnreachableError`, :class:`~dashboards.errors.GrafanaPushError`
    (another refusal) or :class:`~dashboards.errors.DashboardsError` (nothing of that flavour, a
    dashboard without a ``county`` variable, a county given twice).
    """
    flavour = Flavour(flavour)  # a CLI may pass the option's plain string
    chosen = [d for d in dashboards if d.flavour == flavour]
    if not chosen:
        raise DashboardsError(f"no {flavour.value} dashboards to push")
    _refuse_repeats([d.uid for d in chosen], "dashboard uid")
    _refuse_repeats([c.id for c in counties], "county")
    targets = _targets(chosen, counties)  # built before any request: a dashboard it refuses changes nothing
    grafana = GrafanaHttp(grafana_url, token, verify_tls=verify_tls, timeout_s=timeout_s)
    existing = {hit["uid"]: hit for hit in grafana.folders() if isinstance(hit.get("uid"), str)}
    folders = tuple(_ensure_folder(grafana, folder, existing) for folder in _unique_folders(targets))
    pushed = tuple(_save(grafana, target, force=force, message=message) for target in targets)
    report = PushReport(grafana.url, flavour, folders, pushed)
    for line in report.lines():
        logger.info("%s", line)
    return report


@dataclass(frozen=True, slots=True)
class _Target:
    source: GeneratedDashboard
    county: County | None
    folder: Folder
    model: dict[str, Any]


def _targets(dashboards: Sequence[GeneratedDashboard], counties: Sequence[County]) -> list[_Target]:
    if not counties:
        return [_Target(d, None, SHARED_FOLDER, _without_identity(d.model)) for d in dashboards]
    targets = []
    for county in counties:
        folder = county_folder(county)
        for dashboard in dashboards:
            model = for_county(dashboard.model, county, uid=county_dashboard_uid(dashboard.uid, county))
            targets.append(_Target(dashboard, county, folder, _without_identity(model)))
    # Joining can make distinct pairs meet ("x-y" + "z" and "x" + "y-z"): refuse rather than overwrite one.
    _refuse_repeats([t.model["uid"] for t in targets], "derived dashboard uid")
    _refuse_repeats([county_folder(county).uid for county in counties], "derived folder uid")
    return targets


def _without_identity(model: dict[str, Any]) -> dict[str, Any]:
    """The model without ``id`` and ``version``: Grafana finds the dashboard by uid and, with overwrite, versions it."""
    return {key: value for key, value in model.items() if key not in _IGNORED_WHEN_COMPARING}


def _unique_folders(targets: Sequence[_Target]) -> list[Folder]:
    return list(dict.fromkeys(target.folder for target in targets))


def _ensure_folder(grafana: GrafanaHttp, folder: Folder, existing: dict[str, dict[str, Any]]) -> FolderResult:
    found = existing.get(folder.uid)
    if found is not None:
        if found.get("title") == folder.title:
            return FolderResult(folder.uid, folder.title, Outcome.UNCHANGED)
        grafana.rename_folder(folder.uid, folder.title)
        return FolderResult(folder.uid, folder.title, Outcome.UPDATED)
    try:
        grafana.create_folder(folder.uid, folder.title)
    except GrafanaPushError as exc:
        same_title = [uid for uid, hit in existing.items() if hit.get("title") == folder.title]
        if not same_title:
            raise
        raise GrafanaPushError(
            f"{exc}; a folder titled {folder.title!r} already exists with uid {same_title[0]!r}: "
            "rename or delete it in Grafana, then push again"
        ) from exc
    return FolderResult(folder.uid, folder.title, Outcome.CREATED)


def _save(grafana: GrafanaHttp, target: _Target, *, force: bool, message: str) -> PushedDashboard:
    uid: str = target.model["uid"]
    stored = grafana.dashboard(uid)
    if stored is not None and not force and _same(stored, target):
        meta = stored.get("meta", {})
        version = stored["dashboard"].get("version")
        return _pushed(grafana, target, Outcome.UNCHANGED, version, meta.get("url"))
    answer = grafana.save_dashboard(
        {"dashboard": target.model, "folderUid": target.folder.uid, "overwrite": True, "message": message}
    )
    if answer.get("status") != "success":
        raise GrafanaPushError(f"Grafana at {grafana.url} did not save dashboard {uid!r}: it answered {answer!r:.300}")
    if answer.get("uid") != uid:
        raise GrafanaPushError(f"Grafana at {grafana.url} saved dashboard {uid!r} under uid {answer.get('uid')!r}")
    outcome = Outcome.CREATED if stored is None else Outcome.UPDATED
    return _pushed(grafana, target, outcome, answer.get("version"), answer.get("url"))


def _same(stored: dict[str, Any], target: _Target) -> bool:
    """Whether Grafana already holds exactly this model in this folder (its own id and version aside)."""
    dashboard = stored.get("dashboard")
    meta = stored.get("meta")
    if not isinstance(dashboard, dict) or not isinstance(meta, dict):
        return False
    return meta.get("folderUid") == target.folder.uid and _without_identity(dashboard) == target.model


def _pushed(grafana: GrafanaHttp, target: _Target, outcome: Outcome, version: Any, path: Any) -> PushedDashboard:
    return PushedDashboard(
        source_uid=target.source.uid,
        county=target.county.id if target.county is not None else None,
        uid=target.model["uid"],
        folder_uid=target.folder.uid,
        title=target.source.title,
        outcome=outcome,
        version=version if isinstance(version, int) else None,
        url=grafana.absolute(path) if isinstance(path, str) else f"{grafana.url}/d/{target.model['uid']}",
    )


def _refuse_repeats(values: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise DashboardsError(f"{what} {value!r} occurs twice; each must be unique")
        seen.add(value)

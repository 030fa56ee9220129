"""Generated dashboards on disk: ``<directory>/<flavour>/<uid>.json``, written stably and read back strictly.

The files are committed, so writing them must be reproducible: keys sorted, two-space indent, UTF-8
(titles carry "·"), one trailing newline, and a file whose text would not change is not rewritten
(Grafana's file provider polls modification times; so do reviewers' diffs). Reading them back is
what ``push`` and the provisioning tests start from, so a malformed file is refused with its path in
the message instead of surfacing later as a confusing Grafana error.
"""

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dashboards.errors import GeneratedFileError
from dashboards.grafana_uid import is_valid_grafana_uid
from dashboards.model import Flavour, GeneratedDashboard

SUFFIX: Final = ".json"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :func:`write_generated` did to the directory, each list in path order."""

    written: tuple[Path, ...]
    """Files created or whose content changed."""
    unchanged: tuple[Path, ...]
    removed: tuple[Path, ...]
    """Files of dashboards no longer generated (only with ``prune=True``)."""


def generated_path(directory: Path, dashboard: GeneratedDashboard) -> Path:
    """Where ``dashboard`` lives under ``directory``: ``<directory>/<flavour>/<uid>.json``."""
    return directory / dashboard.flavour.value / f"{dashboard.uid}{SUFFIX}"


def render(dashboard: GeneratedDashboard) -> str:
    """The file's text: the model as JSON, keys sorted, two-space indent, trailing newline."""
    return json.dumps(dashboard.model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_generated(dashboards: Iterable[GeneratedDashboard], directory: Path, *, prune: bool = False) -> WriteResult:
    """Write every dashboard to its file under ``directory`` (created as needed).

    Each dashboard's model must carry its own ``uid`` and ``title`` (Grafana reads them from the
    file) and uids must be unique within a flavour. With ``prune``, ``*.json`` files in the flavour
    directories that belong to no given dashboard are deleted, so a dashboard dropped from the code
    also leaves the repository (and a Grafana provisioned from it).
    """
    chosen = list(dashboards)
    _check_before_writing(chosen)
    written: list[Path] = []
    unchanged: list[Path] = []
    for dashboard in chosen:
        path = generated_path(directory, dashboard)
        text = render(dashboard)
        if _current_text(path) == text:
            unchanged.append(path)
            continue
        _write_atomically(path, text)
        written.append(path)
    removed: list[Path] = []
    if prune:
        keep = {generated_path(directory, d) for d in chosen}
        for flavour in Flavour:
            flavour_directory = directory / flavour.value
            if not flavour_directory.is_dir():
                continue
            for path in sorted(flavour_directory.glob(f"*{SUFFIX}")):
                if path not in keep:
                    path.unlink()
                    removed.append(path)
    return WriteResult(tuple(sorted(written)), tuple(sorted(unchanged)), tuple(removed))


def read_generated(directory: Path, flavour: Flavour | None = None) -> list[GeneratedDashboard]:
    """The dashboards under ``directory`` (one flavour, or all), in flavour then uid order.

    A flavour without a directory has no dashboards. Raises :class:`GeneratedFileError` naming the
    file when one is not JSON, not a JSON object, lacks a non-empty string ``uid`` or ``title``, or
    is named other than its ``uid``; and when ``directory`` does not exist.
    """
    if not directory.is_dir():
        raise GeneratedFileError(f"no generated dashboards at {directory}: the directory does not exist")
    flavours = [flavour] if flavour is not None else list(Flavour)
    found: list[GeneratedDashboard] = []
    for each in flavours:
        flavour_directory = directory / each.value
        if not flavour_directory.is_dir():
            continue
        found.extend(read_generated_file(path, each) for path in sorted(flavour_directory.glob(f"*{SUFFIX}")))
    return found


def read_generated_file(path: Path, flavour: Flavour) -> GeneratedDashboard:
    """One generated file, checked as :func:`read_generated` describes."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GeneratedFileError(f"cannot read generated dashboard {path}: {exc}") from exc
    try:
        model: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GeneratedFileError(
            f"generated dashboard {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(model, dict):
        raise GeneratedFileError(f"generated dashboard {path} is not a JSON object but {type(model).__name__}")
    uid = model.get("uid")
    title = model.get("title")
    if not isinstance(uid, str) or not uid:
        raise GeneratedFileError(f"generated dashboard {path} has no string 'uid'")
    if not isinstance(title, str) or not title.strip():
        raise GeneratedFileError(f"generated dashboard {path} has no non-empty string 'title'")
    if path.stem != uid:
        raise GeneratedFileError(f"generated dashboard {path} holds uid {uid!r}; its file must be named {uid}{SUFFIX}")
    return GeneratedDashboard(flavour=flavour, uid=uid, title=title, model=model)


def _check_before_writing(dashboards: list[GeneratedDashboard]) -> None:
    seen: set[tuple[Flavour, str]] = set()
    for dashboard in dashboards:
        label = f"{dashboard.flavour.value} dashboard {dashboard.uid!r}"
        if not is_valid_grafana_uid(dashboard.uid):
            raise GeneratedFileError(f"{label}: a Grafana uid is 1-40 characters of letters, digits, '-' and '_'")
        if dashboard.model.get("uid") != dashboard.uid:
            raise GeneratedFileError(f"{label}: its model's uid is {dashboard.model.get('uid')!r}")
        if dashboard.model.get("title") != dashboard.title:
            raise GeneratedFileError(f"{label}: its model's title is {dashboard.model.get('title')!r}")
        key = (dashboard.flavour, dashboard.uid)
        if key in seen:
            raise GeneratedFileError(f"{label}: two dashboards have this uid")
        seen.add(key)


def _current_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory, so Grafana never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        Path(temporary).chmod(0o644)  # mkstemp makes it 0600; Grafana may run as another user
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

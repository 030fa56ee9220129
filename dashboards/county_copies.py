"""One copy of each dashboard per county: its folder, its uid, and its ``county`` variable set to that county.

Command staff of a county open their folder and see their county at once; the generated dashboard
itself stays county-neutral (its ``county`` variable queries every county). Everything here is a
pure function of the dashboard and the county, so pushing twice gives Grafana identical requests.
"""

import copy
from dataclasses import dataclass
from typing import Any, Final

from dashboards.errors import DashboardsError
from dashboards.grafana_uid import derive_uid

COUNTY_VARIABLE: Final = "county"
FOLDER_UID_PREFIX: Final = "outpost"
FOLDER_TITLE: Final = "Outpost"


@dataclass(frozen=True, slots=True)
class County:
    """A county the dashboards are pushed for: its id (the ``county`` tag/label value) and a display name."""

    id: str
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.id.strip():
            raise ValueError("a county needs a non-empty id")

    @property
    def display_name(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class Folder:
    """A Grafana folder the push ensures exists with this uid and title."""

    uid: str
    title: str


SHARED_FOLDER: Final = Folder(uid=FOLDER_UID_PREFIX, title=FOLDER_TITLE)
"""Where the dashboards go when no county is given."""


def county_folder(county: County) -> Folder:
    """``outpost-<county>`` titled "Outpost · <name>" (the uid shortened with a hash if Grafana needs it)."""
    return Folder(uid=derive_uid(FOLDER_UID_PREFIX, county.id), title=f"{FOLDER_TITLE} · {county.display_name}")


def county_dashboard_uid(dashboard_uid: str, county: County) -> str:
    """The copy's uid: ``<dashboard uid>-<county id>``, shortened with a hash if Grafana needs it."""
    return derive_uid(dashboard_uid, county.id)


def for_county(model: dict[str, Any], county: County, *, uid: str) -> dict[str, Any]:
    """A deep copy of ``model`` with ``uid`` and its ``county`` variable's current value (and options) set.

    Raises :class:`DashboardsError` if the dashboard has no ``county`` variable: a per-county copy of
    it would show every county, which is not what a county's folder promises.
    """
    copied = copy.deepcopy(model)
    copied["uid"] = uid
    variable = _county_variable(copied)
    if variable is None:
        raise DashboardsError(
            f"dashboard {model.get('uid')!r} has no template variable {COUNTY_VARIABLE!r}, "
            "so it cannot be pushed per county"
        )
    multi = bool(variable.get("multi"))
    value: str | list[str] = [county.id] if multi else county.id
    variable["current"] = {"selected": True, "text": value, "value": value}
    variable["options"] = [{"selected": True, "text": county.id, "value": county.id}]
    return copied


def county_variable_value(model: dict[str, Any]) -> Any:
    """The ``county`` variable's current value in ``model`` (None when it has none): what the copy opens on."""
    variable = _county_variable(model)
    if variable is None:
        return None
    current = variable.get("current")
    return current.get("value") if isinstance(current, dict) else None


def _county_variable(model: dict[str, Any]) -> dict[str, Any] | None:
    templating = model.get("templating")
    variables = templating.get("list") if isinstance(templating, dict) else None
    if not isinstance(variables, list):
        return None
    for variable in variables:
        if isinstance(variable, dict) and variable.get("name") == COUNTY_VARIABLE:
            return variable
    return None

"""The dashboards' template variables: the data source, then county → town → village.

The places come from the fleet's exported :data:`~protocol.series.VILLAGE_STATE`, which carries all
three tags: a town lists only its county's towns, a village only its town's villages. "All" matches
every value (``.*``: the queries match variables as regular expressions).
"""

from typing import Final

from grafana_foundation_sdk.builders.dashboard import DatasourceVariable, QueryVariable
from grafana_foundation_sdk.models.dashboard import VariableOption, VariableRefresh, VariableSort

from dashboards.model import Flavour
from dashboards.panels import DATASOURCE_VARIABLE, datasource
from protocol.series import VILLAGE_STATE

PLACES: Final = ("county", "town", "village")
DEFAULT_DATASOURCE: Final = {
    Flavour.PROMETHEUS: "outpost-victoriametrics",
    Flavour.INFLUXDB: "outpost-influxdb",
}
"""The data sources dashboards/provisioning creates; a deployment may pick another in the variable."""


def datasource_variable(flavour: Flavour) -> DatasourceVariable:
    default = DEFAULT_DATASOURCE[flavour]
    return (
        DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .type(flavour.value)
        .current(VariableOption(selected=True, text=default, value=default))
    )


def place_variable(flavour: Flavour, place: str) -> QueryVariable:
    """The variable for ``place`` (county, town or village), narrowed by the places above it."""
    above = PLACES[: PLACES.index(place)]
    return (
        QueryVariable(place)
        .label(place.capitalize())
        .datasource(datasource(flavour))
        .query(_values_query(flavour, place, above))
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def _values_query(flavour: Flavour, place: str, above: tuple[str, ...]) -> str:
    if flavour is Flavour.PROMETHEUS:
        series = VILLAGE_STATE.field("status").prom_name
        matchers = ",".join(f'{tag}=~"${tag}"' for tag in above)
        return f"label_values({series}{{{matchers}}}, {place})" if matchers else f"label_values({series}, {place})"
    where = " AND ".join(f'"{tag}" =~ /^${tag}$/' for tag in above)
    query = f'SHOW TAG VALUES FROM "{VILLAGE_STATE.name}" WITH KEY = "{place}"'
    return f"{query} WHERE {where}" if where else query

"""An InfluxQL target for Grafana's InfluxDB data source, as a foundation-SDK builder (the SDK has none).

It builds the query JSON Grafana's InfluxDB data source keeps for a raw InfluxQL query:
``{"refId", "query", "rawQuery": true, "resultFormat", "alias", "datasource"}``, so panels take it
like any of the SDK's own targets (``panel.with_target(InfluxQLTarget(select))``).
"""

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from dashboards.influxql import Select

ResultFormat = Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    def __init__(
        self,
        query: str,
        *,
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        datasource: DataSourceRef | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        return payload


class InfluxQLTarget(cogbuilder.Builder[InfluxQLQuery]):
    """A raw InfluxQL target for ``select``: a time series unless :meth:`table`; ``alias`` names its series
    (``$tag_town`` is the value of the series' ``town`` tag)."""

    def __init__(self, select: Select) -> None:
        self._internal = InfluxQLQuery(select.render())

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self

    def datasource(self, datasource: DataSourceRef) -> Self:
        self._internal.datasource = datasource
        return self

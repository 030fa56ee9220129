"""Previews of the dashboards as PNG files, drawn from a real data source's answers, laid out like Grafana's grid.

:mod:`~dashboards.preview.interpolation` substitutes Grafana's variables and macros,
:mod:`~dashboards.preview.sources` runs the panels' queries on VictoriaMetrics (PromQL) or InfluxDB
(InfluxQL) and names the series as Grafana would, and :mod:`~dashboards.preview.drawing` draws them
with matplotlib: no Grafana needed, so a reviewer sees what command staff will see.
"""

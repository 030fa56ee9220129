"""The fleet's own state written as time series (:mod:`protocol.series`), so dashboards need no database access.

Every ``state_export.interval_s`` the fleet writes gauges of its registry (villages, gateways), its open
alerts, its outbox and its own ingest, stamped with the export time, through the same batching writer
as the gateways' points; and every alert step once, at the step's own time, read incrementally behind a
watermark kept across restarts. The time-series server keeps the gauges' history, which the database
does not (it holds only the present).
"""

"""The county-level fleet manager: registry, MQTT ingest, time series, presence, alerts and cases."""

FLEET_VERSION = "0.1.0"

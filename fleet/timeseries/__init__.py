"""Time-series storage: points, the sink interface, its InfluxDB and embedded stores, the batching writer."""

"""MQTT ingest: the consumer that receives every gateway's uplink traffic and the router that acts on it."""

"""The fleet's MQTT plumbing: how its sessions reach the broker (:mod:`.client`), what they do when it drops
(:mod:`.reconnect`), ingest's manually acknowledged session (:mod:`.ingest_session`) and the downlink that publishes
configs and commands to gateways (:mod:`.downlink`)."""

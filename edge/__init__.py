"""The gateway agent that runs at each village: device adapters, local rules and the MQTT uplink."""

AGENT_VERSION = "0.1.0"

"""The connector to the upstream governance (command) platform."""

"""Alerts raised by gateways, and their delivery as cases to the governance platform."""

"""Grafana for tests: an imitation of the HTTP API the dashboard push uses, and a real Grafana when installed.

:mod:`~simulators.grafana.imitation` serves the imitation in-process (:mod:`~simulators.grafana.app`
over :mod:`~simulators.grafana.state`, which applies Grafana's rules for folders, dashboards, uids
and versions and records what it was sent); :mod:`~simulators.grafana.real` runs a real
``grafana server`` on a loopback port with its own data and provisioning directories.
"""

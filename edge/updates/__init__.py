"""Updates of the gateway: releases fetched from the fleet, checked against the release key, installed."""

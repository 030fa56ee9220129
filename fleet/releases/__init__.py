"""Releases the fleet keeps and serves to gateways: signed agent bundles and node firmware sets."""

"""The dashboards: each module builds one, for a given flavour, from flavour-neutral panels."""

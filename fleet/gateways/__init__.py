"""The gateways the fleet knows: the registry (who is where, what it runs, last seen) and presence (online or
offline, judged from heartbeats, announcements and Last Wills)."""

"""Fleet jobs: an agent update or a bulk command rolled out to many gateways in waves, with an abort threshold."""

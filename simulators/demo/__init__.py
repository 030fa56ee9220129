"""``outpost demo``: a simulated county run end to end on embedded defaults, with a live view."""

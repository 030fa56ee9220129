"""``outpost gateway enroll``: the gateway's side of enrollment (the wire contract is :mod:`protocol.enrollment`).

- :mod:`~edge.enrollment.keys`: the gateway's Ed25519 key pair;
- :mod:`~edge.enrollment.client`: the enrollment request over HTTPS (verified; plain HTTP only on request);
- :mod:`~edge.enrollment.files`: atomic writes with their modes, and backups of what they replace;
- :mod:`~edge.enrollment.gateway_toml`: the agent's settings file from the grant;
- :mod:`~edge.enrollment.systemd`: the agent's unit, installed and (on request) started;
- :mod:`~edge.enrollment.enroll`: the whole enrollment, in that order.
"""

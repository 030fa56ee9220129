"""Gateway enrollment: single-use enrollment tokens, and redeeming one for a gateway's identity and credentials.

- :mod:`~fleet.enrollment.tokens`: :class:`EnrollmentTokenStore`, tokens issued for a village (and
  optionally one gateway id), stored as SHA-256, claimed by exactly one redemption;
- :mod:`~fleet.enrollment.broker`: :class:`DynsecProvisioner`, a control session on the broker's dynamic
  security plugin per operation;
- :mod:`~fleet.enrollment.service`: :class:`EnrollmentService`, enrollment (new gateway, re-enrollment,
  replacement of the hardware), revocation and restoration of a gateway.

The wire contract with the gateway is :mod:`protocol.enrollment`.
"""

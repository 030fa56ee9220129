"""A reference governance (command) platform: the upstream service Outpost's fleet raises cases on.

:mod:`simulators.governance.recorder` remembers every case request it receives (exactly once per
alert), and :mod:`simulators.governance.app` serves the HTTP contract of :mod:`protocol.governance`
in front of it, so the fleet's connector can be exercised against something that answers like the
real platform.
"""

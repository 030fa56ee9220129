"""A reference governance (command) platform: the upstream service Outpost's fleet raises cases on.

:mod:`~simulators.governance.platform` is the handle tests and tools start: it serves the HTTP
contract of :mod:`protocol.governance` (:mod:`~simulators.governance.app`), keeps the cases and their
way through the loop (:mod:`~simulators.governance.recorder`), records every request as received
(:mod:`~simulators.governance.request_log`), works each case and calls the fleet back with signed
callbacks (:mod:`~simulators.governance.case_loop`, :mod:`~simulators.governance.callbacks`), and
injects the faults it is told to (:mod:`~simulators.governance.faults`, also over
:mod:`~simulators.governance.admin`).
"""

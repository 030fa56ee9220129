"""Outpost's one benchmark harness: ``python -m bench GROUP [--quick]``.

Every performance figure the project quotes comes from here. A group (see
:data:`bench.harness.GROUP_MODULES`) measures its figures and the harness prints one JSON object per
figure per line: the median of several runs and, where the figure has one, the median of a
baseline measured in the same process on the same machine, with their ratio.
"""

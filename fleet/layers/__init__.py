"""Layered overrides, one mechanism for every kind: part of a document (a gateway config, the alert rules) set for
a county, a town, a village or one gateway, merged most general first onto the defaults.

- :mod:`.scope`: where a layer applies (:class:`~.scope.Scope`) and which layers reach a place
  (:class:`~.scope.Place`);
- :mod:`.document`: checking a layer on its own and resolving a chain of them (:class:`~.document.LayeredModel`);
- :mod:`.rows`: layers stored, written and removed with their audit entries (:class:`~.rows.LayerRows`);
- :mod:`.schemas`: a layer as the API shows it.
"""

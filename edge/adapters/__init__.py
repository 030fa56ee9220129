"""Device adapters: one interface (:mod:`edge.adapters.base`), one module per kind of device."""

"""Alert rules: which detections become alerts, at what severity, with what hold-off, quiet hours and rate
limits; set per county and overridden per town and village like gateway configs (layers, deep-merged)."""

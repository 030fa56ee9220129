"""Config push: layered gateway configs (county ← town ← village ← gateway), resolved, versioned, signed and
published retained to each gateway, and compared with what each gateway reports."""

"""Who may call the fleet's API: roles, their permissions, API tokens and the audit log."""

"""Who may call what: operator API keys, staff sessions, device tokens, venue app keys, and the audit log."""

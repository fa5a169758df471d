"""Staff accounts of the staff web: passwords (passwords), accounts and their change log
(accounts), the sign-in throttle (throttle), session cookies and form tokens (sessions)."""

"""Render: one issue as each reader gets it.

selection (pure: which articles, in what order) → views (the issue and digest views
templates get) → email / wecom (once per variant) → message (per reader: cheap splicing,
from mime_headers, mime_body and mime_layout).
"""

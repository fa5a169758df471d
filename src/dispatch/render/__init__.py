"""Render: one issue as each reader gets it.

select (pure: which articles, in what order) → digest (the view templates get) →
email / wecom (once per variant) → message (per reader: cheap splicing, from
mime_headers, mime_body and mime_layout).
"""

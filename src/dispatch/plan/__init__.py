"""Plan: due issues are claimed and fanned out to the outbox (one row per reader × channel)."""

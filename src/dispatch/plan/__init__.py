"""Plan: due issues, claimed through dispatch.lifecycle, are fanned out to the outbox (one
row per reader × channel)."""

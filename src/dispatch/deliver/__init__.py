"""Deliver: workers claim outbox rows, render, hand them to a channel, record outcomes."""

"""Feedback: what readers say (votes, comments, replies) and what comes back in their
name (auto-replies, bounces), read from the reader pages and the IMAP mailbox."""

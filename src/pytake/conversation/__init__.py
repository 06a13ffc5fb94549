"""Conversations: the agent inbox (list, detail with messages, assignment, replies)."""

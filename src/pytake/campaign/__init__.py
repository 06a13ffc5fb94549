"""Campaigns: template broadcasts to an audience of contacts, paced per number, resumable."""

"""Realtime: the /ws endpoint, the registry of connections (bounded send queues), stats."""

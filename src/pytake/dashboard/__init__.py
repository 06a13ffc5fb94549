"""The web console: the built single-page app (from `web/`) served at `/app`."""

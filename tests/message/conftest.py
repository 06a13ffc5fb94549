"""Simulator + app-on-loopback fixtures (see tests/channel/support.py)."""

from tests.channel.support import api, wa_app, wa_org, wa_url  # noqa: F401

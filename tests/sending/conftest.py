"""Simulator + app-with-dispatcher fixtures (see sending/support.py)."""

from tests.channel.support import sim  # noqa: F401
from tests.sending.support import http, send_app, send_url, shop  # noqa: F401

"""The flow interpreter: pure (flow version, session state, event, clock) -> (state, actions).

No database or HTTP imports here (tests/chatbot/engine checks that): the runtime in
pytake.chatbot loads flows and sessions, calls `handle`, and makes the actions real.
"""

from pytake.chatbot.engine.interpreter import DEFERRED, RESTARTED, handle, keyword_matches
from pytake.chatbot.engine.model import (
    Bot,
    BotSettings,
    CallHttp,
    Context,
    Count,
    FlowVersion,
    Handoff,
    HttpResponse,
    Inbound,
    Outcome,
    Reply,
    SendTemplate,
    SessionState,
    Start,
    UpdateContact,
    Wake,
)
from pytake.chatbot.engine.validate import Problem, Report, validate_flow

__all__ = [
    "DEFERRED",
    "RESTARTED",
    "Bot",
    "BotSettings",
    "CallHttp",
    "Context",
    "Count",
    "FlowVersion",
    "Handoff",
    "HttpResponse",
    "Inbound",
    "Outcome",
    "Problem",
    "Reply",
    "Report",
    "SendTemplate",
    "SessionState",
    "Start",
    "UpdateContact",
    "Wake",
    "handle",
    "keyword_matches",
    "validate_flow",
]

"""The flow interpreter: (flow version, session state, event, clock) -> (new state, actions).

Pure: it reads only its arguments and returns what to do; the runtime makes the actions
real (queued messages, a handoff, contact changes, an HTTP call) in the same transaction
that saves the state.

Which flow answers an inbound message, by priority: the session waiting for the customer's
input > a reply payload that targets a flow (`button` trigger) > a keyword > a new
conversation > the chatbot's fallback message.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pytake.chatbot.engine.conditions import matches
from pytake.chatbot.engine.inputs import Invalid, parse_answer, pick
from pytake.chatbot.engine.messages import (
    node_message,
    node_options,
    question_message,
    text_message,
)
from pytake.chatbot.engine.model import (
    Bot,
    CallHttp,
    Context,
    Count,
    CounterKind,
    Event,
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
from pytake.chatbot.engine.text import fold, render, render_deep

DEFAULT_MAX_ATTEMPTS = 3
# An HTTP call's lease: past its timeout plus this, a call whose worker died is made again.
HTTP_LEASE_SLACK = timedelta(seconds=30)
DEFERRED = "deferred"
RESTARTED = "restarted"


def handle(
    bot: Bot,
    session_flow: FlowVersion | None,
    state: SessionState | None,
    event: Event,
    ctx: Context,
) -> Outcome:
    """Run one event. `session_flow` is the version the live session `state` runs on."""
    run = _Run(bot, session_flow, state, ctx)
    if isinstance(event, Inbound):
        run.inbound(event)
    elif isinstance(event, Start):
        run.start_manual(event.flow_id)
    elif isinstance(event, Wake):
        run.wake()
    elif isinstance(event, HttpResponse):
        run.http_response(event)
    return Outcome(run.state, run.actions, run.note)


class _Run:
    def __init__(
        self, bot: Bot, flow: FlowVersion | None, state: SessionState | None, ctx: Context
    ) -> None:
        self.bot = bot
        self.ctx = ctx
        self.flow = flow
        self.state = state if state is not None and state.live and flow is not None else None
        self.contact = dict(ctx.contact)
        self.actions: list[Any] = []
        self.note: str | None = None

    # --- events --------------------------------------------------------------------------

    def inbound(self, event: Inbound) -> None:
        state = self.state
        if state is not None and state.waiting in ("timer", "http"):
            self.note = DEFERRED  # answered after the delay / call, in arrival order
            return
        if state is not None and state.waiting == "input":
            state.steps = 0
            state.variables["last_input"] = event.text or event.reply_id or ""
            self._walk(self._answer(event))
            return
        self._choose_flow(event)

    def start_manual(self, flow_id: str) -> None:
        flow = self.bot.flows.get(flow_id)
        if flow is None:
            self.note = "unknown_flow"
            return
        if self.state is not None:
            self._drop_current("replaced")
            self.note = RESTARTED  # a new session: the runtime closes the old one
        self._start(flow, {})

    def wake(self) -> None:
        state = self.state
        if state is None or state.wake_at is None or state.wake_at > self.ctx.now:
            return
        if state.waiting == "timer":
            state.waiting, state.wake_at = None, None
            self._walk(self._leave(self._node(), self._node().get("next")))
        elif state.waiting == "input":
            self._expire()
        elif state.waiting == "http" and state.pending_http is not None:
            self._call(state.pending_http)  # its worker died before the answer was saved

    def http_response(self, event: HttpResponse) -> None:
        state = self.state
        if state is None or state.waiting != "http":
            self.note = "stale_http_response"
            return
        node = self._node()
        state.waiting, state.wake_at, state.pending_http = None, None, None
        state.variables["http_status"] = event.status
        ok = event.error is None and event.status is not None and 200 <= event.status < 400
        if not ok:
            state.variables["http_error"] = event.error or f"HTTP {event.status}"
            if node.get("on_error"):
                self._walk(self._leave(node, node["on_error"]))
            else:
                self._end("http_error")
            return
        for name, path in (node.get("map") or {}).items():
            state.variables[name] = json_path(event.body, str(path))
        self._walk(self._leave(node, node.get("next")))

    # --- choosing a flow -----------------------------------------------------------------

    def _choose_flow(self, event: Inbound) -> None:
        flows = sorted(self.bot.flows.values(), key=lambda f: (f.name, f.flow_id))
        chosen = (
            _by_payload(flows, event.reply_id)
            or _by_keyword(flows, event.text)
            or (_by_new_conversation(flows) if event.new_conversation else None)
        )
        settings = self.bot.settings
        if event.new_conversation and settings.welcome_message:
            self._say(None, text_message(render(settings.welcome_message, self._values())))
        if chosen is not None:
            self._start(chosen, {"last_input": event.text or event.reply_id or ""})
            return
        if not event.new_conversation and settings.fallback_message:
            self._say(None, text_message(render(settings.fallback_message, self._values())))
            self.note = "fallback"
        else:
            self.note = "no_flow"

    def _start(self, flow: FlowVersion, variables: dict[str, Any]) -> None:
        self.flow = flow
        self.state = SessionState(flow.flow_id, flow.version, flow.entry, dict(variables))
        self._walk(flow.entry)

    def _drop_current(self, reason: str) -> None:
        if self.state is not None:
            self._count(self.state.node, "dropped")
            self.state.status, self.state.end_reason = "ended", reason
            self.state = None

    # --- walking -------------------------------------------------------------------------

    def _walk(self, node_id: str | None) -> None:
        """Run nodes from `node_id` until the session waits or ends."""
        while node_id is not None and self.state is not None and self.state.live:
            assert self.flow is not None
            if node_id not in self.flow.nodes:
                self._end("missing_node")
                return
            state = self.state
            state.steps += 1
            state.node, state.attempts = node_id, 0
            if state.steps > self.bot.settings.max_steps:
                self._loop_guard()
                return
            self._count(node_id, "entered")
            node = self.flow.nodes[node_id]
            node_id = _HANDLERS[str(node.get("type"))](self, node)

    def _leave(self, node: dict[str, Any], next_id: Any) -> str | None:
        """Mark `node` completed and go to `next_id`; no next ends the session."""
        self._count(node["id"], "completed")
        if isinstance(next_id, str) and next_id:
            return next_id
        self._finish("completed")
        return None

    def _node(self) -> dict[str, Any]:
        assert self.flow is not None and self.state is not None
        return self.flow.nodes.get(self.state.node, {"id": self.state.node, "type": "end"})

    def _wait_input(self) -> None:
        assert self.state is not None
        self.state.waiting = "input"
        timeout = timedelta(seconds=self.bot.settings.session_timeout_seconds)
        self.state.wake_at = self.ctx.now + timeout

    def _finish(self, reason: str) -> None:
        if self.state is not None:
            self.state.status, self.state.end_reason = "ended", reason
            self.state.waiting, self.state.wake_at = None, None

    def _end(self, reason: str) -> None:
        """End where the session stands (it did not complete that node)."""
        if self.state is not None:
            self._count(self.state.node, "dropped")
            self._finish(reason)

    def _expire(self) -> None:
        assert self.state is not None
        self._count(self.state.node, "dropped")
        self.state.status, self.state.end_reason = "expired", "inactive"
        self.state.waiting, self.state.wake_at = None, None
        message = self.bot.settings.expiry_message
        if message and self.ctx.window_open:
            self._say(self.state.node, text_message(render(message, self._values())))

    def _loop_guard(self) -> None:
        assert self.state is not None
        limit = self.bot.settings.max_steps
        self._count(self.state.node, "dropped")
        self._handoff(None, f"loop_guard: more than {limit} nodes without the customer")

    def _handoff(self, node: dict[str, Any] | None, reason: str) -> None:
        assert self.state is not None
        assign = (node or {}).get("assign_to") or {}
        self.actions.append(
            Handoff(
                node["id"] if node else self.state.node,
                reason,
                user_id=assign.get("user_id"),
                team=assign.get("team"),
                variables=_collected(self.state.variables),
            )
        )
        self.state.status, self.state.end_reason = "handed_off", reason
        self.state.waiting, self.state.wake_at = None, None

    # --- node types ----------------------------------------------------------------------

    def _message(self, node: dict[str, Any]) -> str | None:
        if not self.ctx.window_open:
            return self._outside_window(node)
        self._say(node["id"], node_message(node, node.get("text"), self._values()))
        if node_options(node):
            self._wait_input()
            return None
        return self._leave(node, node.get("next"))

    def _outside_window(self, node: dict[str, Any]) -> str | None:
        """No free-form send outside the 24-hour window: the node's template, or a handoff."""
        template = node.get("template")
        if template is None:
            self._handoff(node, "window_closed")
            return None
        self.actions.append(SendTemplate(node["id"], render_deep(template, self._values())))
        if node_options(node):
            self._wait_input()
            return None
        return self._leave(node, node.get("next"))

    def _question(self, node: dict[str, Any]) -> str | None:
        if not self.ctx.window_open:
            self._handoff(node, "window_closed")
            return None
        self._say(node["id"], question_message(node, node.get("text"), self._values()))
        self._wait_input()
        return None

    def _answer(self, event: Inbound) -> str | None:
        """The customer answered the node the session waits at."""
        node = self._node()
        if node.get("type") == "question":
            spec = node.get("input") or {"type": "text"}
            try:
                value = parse_answer(spec, event.text, event.reply_id)
            except Invalid:
                return self._retry(node)
            assert self.state is not None
            variable = str(node["variable"])
            if isinstance(value, dict):  # a choice: its title, and its id alongside
                self.state.variables[variable] = value.get("title")
                self.state.variables[f"{variable}_id"] = value.get("id")
                return self._leave(node, value.get("next") or node.get("next"))
            self.state.variables[variable] = value
            return self._leave(node, node.get("next"))
        option = pick(node_options(node), event.text or "", event.reply_id)
        if option is None:
            return self._retry(node)
        return self._leave(node, option.get("next"))

    def _retry(self, node: dict[str, Any]) -> str | None:
        assert self.state is not None
        self.state.attempts += 1
        limit = node.get("max_attempts") or DEFAULT_MAX_ATTEMPTS
        if self.state.attempts >= limit:
            self._count(node["id"], "dropped")
            if node.get("on_failure"):
                return str(node["on_failure"])
            if self.bot.settings.handoff_enabled:
                self._handoff(node, "max_attempts")
            else:
                self._finish("max_attempts")
            return None
        text = node.get("retry_text") or node.get("text")
        build = question_message if node.get("type") == "question" else node_message
        self._say(node["id"], build(node, text, self._values()))
        self._wait_input()
        return None

    def _condition(self, node: dict[str, Any]) -> str | None:
        values = self._values()
        for rule in node.get("rules") or []:
            if matches(rule.get("when") or {}, values, self.ctx.now, self.ctx.timezone):
                return self._leave(node, rule.get("next"))
        return self._leave(node, node.get("else"))

    def _set_variable(self, node: dict[str, Any]) -> str | None:
        assert self.state is not None
        pairs = dict(node.get("variables") or {})
        if node.get("variable"):
            pairs[str(node["variable"])] = node.get("value")
        for name, value in pairs.items():
            self.state.variables[name] = render_deep(value, self._values())
        return self._leave(node, node.get("next"))

    def _update_contact(self, node: dict[str, Any]) -> str | None:
        values = self._values()
        changes: dict[str, Any] = {}
        for name in ("name", "email"):
            if node.get(name):
                changes[name] = render(node[name], values)
        if node.get("attributes"):
            changes["attributes"] = render_deep(node["attributes"], values)
        for name in ("add_tags", "remove_tags"):
            if node.get(name):
                changes[name] = [render(t, values) for t in node[name]]
        if node.get("opt_out") is not None:
            changes["opt_out"] = bool(node["opt_out"])
        self.actions.append(UpdateContact(changes))
        self._apply_to_contact(changes)
        return self._leave(node, node.get("next"))

    def _apply_to_contact(self, changes: dict[str, Any]) -> None:
        for name in ("name", "email"):
            if name in changes:
                self.contact[name] = changes[name]
        if "attributes" in changes:
            self.contact["attributes"] = {
                **(self.contact.get("attributes") or {}),
                **changes["attributes"],
            }
        tags = list(self.contact.get("tags") or [])
        tags += [t for t in changes.get("add_tags", []) if t not in tags]
        self.contact["tags"] = [t for t in tags if t not in changes.get("remove_tags", [])]

    def _http(self, node: dict[str, Any]) -> str | None:
        values = self._values()
        request = {
            "node": node["id"],
            "method": str(node.get("method", "GET")).upper(),
            "url": render(node["url"], values),
            "headers": {str(k): render(v, values) for k, v in (node.get("headers") or {}).items()},
            "body": render_deep(node.get("body"), values),
            "timeout": float(node.get("timeout", 5)),
        }
        self._call(request)
        return None

    def _call(self, request: dict[str, Any]) -> None:
        assert self.state is not None
        self.state.waiting, self.state.pending_http = "http", request
        lease = timedelta(seconds=float(request["timeout"])) + HTTP_LEASE_SLACK
        self.state.wake_at = self.ctx.now + lease
        self.actions.append(
            CallHttp(
                request["node"], request["method"], request["url"], request["headers"],
                request["body"], float(request["timeout"]),
            )
        )  # fmt: skip

    def _handoff_node(self, node: dict[str, Any]) -> str | None:
        if node.get("text") and self.ctx.window_open:
            self._say(node["id"], text_message(render(node["text"], self._values())))
        self._count(node["id"], "completed")
        self._handoff(node, "handoff_node")
        return None

    def _delay(self, node: dict[str, Any]) -> str | None:
        assert self.state is not None
        self.state.waiting = "timer"
        self.state.wake_at = self.ctx.now + timedelta(seconds=float(node["seconds"]))
        return None

    def _jump(self, node: dict[str, Any]) -> str | None:
        flow_id = node.get("flow_id")
        if flow_id is None or (self.flow is not None and str(flow_id) == self.flow.flow_id):
            return self._leave(node, node.get("node"))
        target = self.bot.flows.get(str(flow_id))
        if target is None:
            self._end("jump_to_inactive_flow")
            return None
        self._count(node["id"], "completed")
        assert self.state is not None
        self.flow = target
        self.state.flow_id, self.state.version = target.flow_id, target.version
        return str(node.get("node") or target.entry)

    def _template(self, node: dict[str, Any]) -> str | None:
        self.actions.append(SendTemplate(node["id"], render_deep(node["template"], self._values())))
        return self._leave(node, node.get("next"))

    def _end_node(self, node: dict[str, Any]) -> str | None:
        if node.get("text") and self.ctx.window_open:
            self._say(node["id"], text_message(render(node["text"], self._values())))
        return self._leave(node, None)

    # --- helpers -------------------------------------------------------------------------

    def _values(self) -> dict[str, Any]:
        variables = self.state.variables if self.state is not None else {}
        return {**variables, "variables": variables, "contact": self.contact}

    def _say(self, node: str | None, content: tuple[str, dict[str, Any]]) -> None:
        kind, body = content
        self.actions.append(Reply(node, kind, body))

    def _count(self, node: str, kind: CounterKind) -> None:
        if self.flow is not None:
            self.actions.append(Count(self.flow.flow_id, self.flow.version, node, kind))


_HANDLERS = {
    "message": _Run._message,
    "question": _Run._question,
    "condition": _Run._condition,
    "set_variable": _Run._set_variable,
    "update_contact": _Run._update_contact,
    "http": _Run._http,
    "handoff": _Run._handoff_node,
    "delay": _Run._delay,
    "jump": _Run._jump,
    "template": _Run._template,
    "end": _Run._end_node,
}


# --- triggers ----------------------------------------------------------------------------


def _by_payload(flows: list[FlowVersion], reply_id: str | None) -> FlowVersion | None:
    if not reply_id:
        return None
    for flow in flows:
        trigger = flow.trigger
        payloads = trigger.get("payloads") or [trigger.get("payload")]
        if trigger.get("type") == "button" and reply_id in payloads:
            return flow
    return None


def keyword_matches(trigger: dict[str, Any], text: str) -> bool:
    """Whether a `keyword` trigger fires for `text` (case- and accent-insensitive)."""
    said = fold(text)
    mode = trigger.get("match", "exact")
    for keyword in trigger.get("keywords") or []:
        if mode == "exact" and said == fold(keyword):
            return True
        if mode == "contains" and fold(keyword) and fold(keyword) in said:
            return True
        if mode == "regex":
            try:
                if re.search(keyword, said, re.IGNORECASE) or re.search(keyword, text, re.I):
                    return True
            except re.error:
                continue
    return False


def _by_keyword(flows: list[FlowVersion], text: str | None) -> FlowVersion | None:
    if not text or not text.strip():
        return None
    for flow in flows:
        if flow.trigger.get("type") == "keyword" and keyword_matches(flow.trigger, text):
            return flow
    return None


def _by_new_conversation(flows: list[FlowVersion]) -> FlowVersion | None:
    return next((f for f in flows if f.trigger.get("type") == "new_conversation"), None)


def _collected(variables: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in variables.items() if k not in ("last_input",)}


def json_path(document: Any, path: str) -> Any:
    """`$.a.b[0].c` in a JSON document (None where it leads nowhere)."""
    current = document
    for key, index in re.findall(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]", path[1:]):
        if key:
            current = current.get(key) if isinstance(current, dict) else None
        else:
            i = int(index)
            current = current[i] if isinstance(current, list) and i < len(current) else None
        if current is None:
            return None
    return current

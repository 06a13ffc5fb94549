"""The interpreter on its own: each node type, triggers and their priority, the window, the
loop guard, expiry, delays and HTTP calls as waits, per-node counters."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pytake.chatbot.engine import (
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
    handle,
)
from tests.chatbot.engine.test_validate import LEAD_CAPTURE

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def flow(definition: dict[str, Any], flow_id: str = "f1", version: int = 1) -> FlowVersion:
    return FlowVersion.of(flow_id, version, definition)


def bot(*flows: FlowVersion, **settings: Any) -> Bot:
    return Bot(BotSettings(**settings), {f.flow_id: f for f in flows})


class Chat:
    """A conversation with the interpreter: keeps the state between events."""

    def __init__(self, the_bot: Bot, **ctx: Any) -> None:
        self.bot = the_bot
        self.state: SessionState | None = None
        self.flow: FlowVersion | None = None
        self.now = NOW
        self.ctx = ctx
        self.contact: dict[str, Any] = {"name": "Ana", "attributes": {"plan": "gold"}, "tags": []}

    def send(self, event: Any) -> Outcome:
        context = Context(now=self.now, contact=self.contact, **self.ctx)
        out = handle(self.bot, self.flow, self.state, event, context)
        self.state = out.state
        if out.state is not None:
            self.flow = self.bot.flows.get(out.state.flow_id, self.flow)
        return out

    def say(self, text: str | None = None, reply_id: str | None = None, **kw: Any) -> Outcome:
        return self.send(Inbound(text=text, reply_id=reply_id, **kw))


def texts(out: Outcome) -> list[str]:
    found = []
    for action in out.actions:
        if isinstance(action, Reply):
            body = action.content.get("body")
            found.append(body["text"] if isinstance(body, dict) else body)
    return found


def counts(out: Outcome) -> list[tuple[str, str]]:
    return [(a.node, a.kind) for a in out.actions if isinstance(a, Count)]


def test_lead_capture_keyword_question_buttons_and_end() -> None:
    chat = Chat(bot(flow(LEAD_CAPTURE)))
    out = chat.say("  COMEÇAR ")  # case, accents and spaces do not matter
    assert texts(out) == ["What is your e-mail?"]
    assert chat.state is not None and chat.state.waiting == "input"
    assert chat.state.wake_at == NOW + timedelta(days=1)
    assert texts(chat.say("not an email")) == ["That does not look like an e-mail address."]
    assert texts(chat.say("still no")) == ["That does not look like an e-mail address."]
    out = chat.say("Ana@Example.com")
    assert chat.state.variables["email"] == "ana@example.com"
    [reply] = [a for a in out.actions if isinstance(a, Reply)]
    assert reply.type == "interactive" and reply.content["type"] == "button"
    assert reply.content["body"]["text"] == "Thanks ana@example.com! Anything else?"
    assert [b["reply"]["id"] for b in reply.content["action"]["buttons"]] == ["sales", "no"]
    out = chat.say(reply_id="no")
    assert texts(out) == ["Bye!"]
    assert chat.state.status == "ended" and chat.state.end_reason == "completed"
    assert ("bye", "completed") in counts(out) and ("menu", "completed") in counts(out)


def test_question_gives_up_after_max_attempts_and_goes_on_failure() -> None:
    chat = Chat(bot(flow(LEAD_CAPTURE)))
    chat.say("start")
    chat.say("x")
    chat.say("y")
    out = chat.say("z")
    [handoff] = [a for a in out.actions if isinstance(a, Handoff)]
    assert handoff.node == "agent" and texts(out) == ["Passing you to a person."]
    assert chat.state is not None and chat.state.status == "handed_off"
    assert ("ask_email", "dropped") in counts(out)


def test_typed_button_title_is_accepted_and_unknown_reply_retries() -> None:
    chat = Chat(bot(flow(LEAD_CAPTURE)))
    chat.say("start")
    chat.say("a@b.co")
    out = chat.say("what?")
    assert texts(out) == ["Thanks a@b.co! Anything else?"]  # the menu again
    out = chat.say("talk to SALES")
    assert any(isinstance(a, Handoff) for a in out.actions)


def test_trigger_priority_waiting_session_then_payload_then_keyword() -> None:
    by_payload = flow(
        {"name": "Promo", "trigger": {"type": "button", "payload": "PROMO"}, "entry": "p",
         "nodes": [{"id": "p", "type": "end", "text": "promo"}]}, "f2",
    )  # fmt: skip
    by_keyword = flow(
        {"name": "Kw", "trigger": {"type": "keyword", "keywords": ["promo"]}, "entry": "k",
         "nodes": [{"id": "k", "type": "end", "text": "keyword"}]}, "f3",
    )  # fmt: skip
    chat = Chat(bot(flow(LEAD_CAPTURE), by_payload, by_keyword))
    assert texts(chat.say("promo", reply_id="PROMO")) == ["promo"]
    chat.state = None
    assert texts(chat.say("promo")) == ["keyword"]
    chat.state = None
    chat.say("start")
    # Waiting for the e-mail: the keyword is an (invalid) answer, not a new flow.
    assert texts(chat.say("promo")) == ["That does not look like an e-mail address."]


def test_new_conversation_welcome_and_fallback() -> None:
    greeting = flow(
        {"name": "Hi", "trigger": {"type": "new_conversation"}, "entry": "h",
         "nodes": [{"id": "h", "type": "end", "text": "How can I help?"}]},
    )  # fmt: skip
    chat = Chat(bot(greeting, welcome_message="Welcome, {{contact.name}}!", fallback_message="?"))
    assert texts(chat.say("hello", new_conversation=True)) == ["Welcome, Ana!", "How can I help?"]
    out = chat.say("hello again")
    assert texts(out) == ["?"] and out.note == "fallback" and out.state is None


def test_keyword_match_modes() -> None:
    def kw(match: str, keywords: list[str]) -> Chat:
        return Chat(bot(flow({"name": "k", "entry": "a", "nodes": [{"id": "a", "type": "end",
                    "text": "yes"}], "trigger": {"type": "keyword", "keywords": keywords,
                    "match": match}})))  # fmt: skip

    assert texts(kw("contains", ["preço"]).say("qual o PRECO?")) == ["yes"]
    assert texts(kw("exact", ["preço"]).say("qual o preço?")) == []
    assert texts(kw("regex", [r"^pedido\s+\d+$"]).say("Pedido 123")) == ["yes"]


def test_condition_rules_in_order_with_contact_tags_and_time() -> None:
    definition = {
        "name": "c", "entry": "c",
        "nodes": [
            {"id": "c", "type": "condition", "rules": [
                {"when": {"all": [{"left": "contact.tags", "op": "contains", "right": "vip"},
                                  {"left": "weekday", "op": "equals", "right": "thursday"}]},
                 "next": "vip"},
                {"when": {"any": [{"left": "contact.attributes.plan", "op": "equals",
                                   "right": "GOLD"}]}, "next": "gold"},
            ], "else": "other"},
            {"id": "vip", "type": "end", "text": "vip"},
            {"id": "gold", "type": "end", "text": "gold"},
            {"id": "other", "type": "end", "text": "other"},
        ],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)))
    assert texts(chat.send(Start("f1"))) == ["gold"]
    chat.contact["tags"] = ["VIP"]
    chat.state = None
    assert texts(chat.send(Start("f1"))) == ["vip"]  # 2026-12-03 is a Thursday
    chat.contact = {"tags": []}
    chat.state = None
    assert texts(chat.send(Start("f1"))) == ["other"]


def test_business_hours_in_the_organisation_time_zone() -> None:
    definition = {
        "name": "h", "entry": "c",
        "nodes": [
            {"id": "c", "type": "condition", "rules": [{"when": {"all": [
                {"left": "time", "op": "gt", "right": "08:00"},
                {"left": "time", "op": "lt", "right": "18:00"}]}, "next": "open"}],
             "else": "closed"},
            {"id": "open", "type": "end", "text": "open"},
            {"id": "closed", "type": "end", "text": "closed"},
        ],
    }  # fmt: skip
    # 15:00 UTC is 12:00 in São Paulo and 00:00 in Tokyo.
    assert texts(Chat(bot(flow(definition)), timezone="America/Sao_Paulo").send(Start("f1"))) == [
        "open"
    ]
    assert texts(Chat(bot(flow(definition)), timezone="Asia/Tokyo").send(Start("f1"))) == ["closed"]


def test_number_question_min_max_and_ops() -> None:
    definition = {
        "name": "n", "entry": "q",
        "nodes": [
            {"id": "q", "type": "question", "text": "How many?", "variable": "n",
             "input": {"type": "number", "min": 1, "max": 10}, "next": "c"},
            {"id": "c", "type": "condition", "rules": [{"when": {"all": [
                {"left": "n", "op": "gt", "right": 5}]}, "next": "big"}], "else": "small"},
            {"id": "big", "type": "end", "text": "big {{n}}"},
            {"id": "small", "type": "end", "text": "small {{n}}"},
        ],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)))
    chat.send(Start("f1"))
    assert texts(chat.say("11")) == ["How many?"]
    assert texts(chat.say("7")) == ["big 7"]


def test_choice_question_as_list_past_three_and_as_text_menu() -> None:
    choices = [{"id": f"c{i}", "title": f"Option {i}"} for i in range(1, 6)]
    definition = {
        "name": "q", "entry": "q",
        "nodes": [{"id": "q", "type": "question", "text": "Pick", "variable": "pick",
                   "input": {"type": "choice", "choices": choices}, "next": "e"},
                  {"id": "e", "type": "end", "text": "{{pick}} ({{pick_id}})"}],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)))
    [reply] = [a for a in chat.send(Start("f1")).actions if isinstance(a, Reply)]
    assert reply.content["type"] == "list"
    assert len(reply.content["action"]["sections"][0]["rows"]) == 5
    assert texts(chat.say("3")) == ["Option 3 (c3)"]
    definition["nodes"][0]["input"]["display"] = "text"
    chat = Chat(bot(flow(definition)))
    assert texts(chat.send(Start("f1")))[0].endswith("5. Option 5")
    assert texts(chat.say(reply_id="c2")) == ["Option 2 (c2)"]


def test_phone_and_date_inputs() -> None:
    definition = {
        "name": "q", "entry": "p",
        "nodes": [{"id": "p", "type": "question", "text": "Phone?", "variable": "phone",
                   "input": {"type": "phone"}, "next": "d"},
                  {"id": "d", "type": "question", "text": "Date?", "variable": "day",
                   "input": {"type": "date"}, "next": "e"},
                  {"id": "e", "type": "end", "text": "{{phone}} {{day}}"}],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)))
    chat.send(Start("f1"))
    assert texts(chat.say("call me")) == ["Phone?"]
    chat.say("(61) 99999-0000")
    assert texts(chat.say("31/02/2026")) == ["Date?"]
    assert texts(chat.say("25/12/2026")) == ["+61999990000 2026-12-25"]


def test_set_variable_update_contact_and_rendering() -> None:
    definition = {
        "name": "s", "entry": "a",
        "nodes": [
            {"id": "a", "type": "set_variable", "variables": {"greeting": "Hi {{contact.name}}"},
             "next": "b"},
            {"id": "b", "type": "update_contact", "name": "Ana Maria", "add_tags": ["lead"],
             "attributes": {"source": "bot"}, "opt_out": False, "next": "c"},
            {"id": "c", "type": "message", "text": "{{greeting}} / {{contact.name}} / "
             "{{contact.attributes.source}} / {{missing}}.", "next": None},
        ],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)))
    out = chat.send(Start("f1"))
    [update] = [a for a in out.actions if isinstance(a, UpdateContact)]
    assert update.changes == {"name": "Ana Maria", "add_tags": ["lead"],
                              "attributes": {"source": "bot"}, "opt_out": False}  # fmt: skip
    assert texts(out) == ["Hi Ana / Ana Maria / bot / ."]
    assert chat.state is not None and chat.state.status == "ended"


def test_media_message() -> None:
    definition = {"name": "m", "entry": "m", "nodes": [{"id": "m", "type": "message",
                  "media": {"type": "image", "url": "https://cdn.example.com/a.png"},
                  "text": "Our menu"}]}  # fmt: skip
    [reply] = [a for a in Chat(bot(flow(definition))).send(Start("f1")).actions
               if isinstance(a, Reply)]  # fmt: skip
    assert (reply.type, reply.content) == (
        "image",
        {"link": "https://cdn.example.com/a.png", "caption": "Our menu"},
    )


def test_http_node_waits_for_its_answer_and_maps_json_paths() -> None:
    definition = {
        "name": "h", "entry": "h",
        "nodes": [
            {"id": "h", "type": "http", "method": "post", "url": "https://api.example.com/c/{{id}}",
             "headers": {"X-Id": "{{id}}"}, "body": {"who": "{{contact.name}}"}, "timeout": 3,
             "map": {"plan": "$.customer.plans[0].name"}, "next": "ok", "on_error": "bad"},
            {"id": "ok", "type": "end", "text": "plan {{plan}} ({{http_status}})"},
            {"id": "bad", "type": "end", "text": "error {{http_error}}"},
        ],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)))
    out = chat.send(Start("f1"))
    [call] = [a for a in out.actions if isinstance(a, CallHttp)]
    assert (call.method, call.url, call.headers, call.body, call.timeout) == (
        "POST", "https://api.example.com/c/", {"X-Id": ""}, {"who": "Ana"}, 3.0,
    )  # fmt: skip
    assert out.state is not None and out.state.waiting == "http"
    assert out.state.wake_at == NOW + timedelta(seconds=33)
    # A message arriving meanwhile waits for the answer (the runtime defers it).
    assert chat.say("hello").note == "deferred"
    body = {"customer": {"plans": [{"name": "gold"}]}}
    assert texts(chat.send(HttpResponse(200, body))) == ["plan gold (200)"]
    failing = Chat(bot(flow(definition)))
    failing.send(Start("f1"))
    assert texts(failing.send(HttpResponse(None, error="timeout"))) == ["error timeout"]
    assert failing.send(HttpResponse(200)).note == "stale_http_response"


def test_http_call_is_made_again_when_its_lease_runs_out() -> None:
    definition = {"name": "h", "entry": "h", "nodes": [{"id": "h", "type": "http",
                  "url": "https://x.example/", "next": None}]}  # fmt: skip
    chat = Chat(bot(flow(definition)))
    first = chat.send(Start("f1"))
    assert chat.state is not None and chat.state.wake_at is not None
    chat.now = chat.state.wake_at
    again = chat.send(Wake())
    assert [type(a) for a in again.actions] == [CallHttp]
    assert first.actions[-1] == again.actions[-1]


def test_delay_is_a_timer_and_the_flow_resumes_on_wake() -> None:
    definition = {
        "name": "d", "entry": "a",
        "nodes": [{"id": "a", "type": "message", "text": "one", "next": "d"},
                  {"id": "d", "type": "delay", "seconds": 60, "next": "b"},
                  {"id": "b", "type": "end", "text": "two"}],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)))
    assert texts(chat.send(Start("f1"))) == ["one"]
    assert chat.state is not None and chat.state.waiting == "timer"
    assert chat.state.wake_at == NOW + timedelta(seconds=60)
    assert chat.send(Wake()).actions == []  # not due yet
    chat.now += timedelta(seconds=60)
    assert texts(chat.send(Wake())) == ["two"]


def test_outside_the_window_a_message_uses_its_template_or_hands_off() -> None:
    template = {
        "name": "follow_up",
        "language": {"code": "en"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "{{contact.name}}"}]}
        ],
    }
    definition = {
        "name": "w", "entry": "d",
        "nodes": [{"id": "d", "type": "delay", "seconds": 90_000, "next": "t"},
                  {"id": "t", "type": "message", "text": "hi", "template": template,
                   "next": "u"},
                  {"id": "u", "type": "message", "text": "free form"}],
    }  # fmt: skip
    chat = Chat(bot(flow(definition)), window_open=False)
    chat.send(Start("f1"))
    chat.now += timedelta(seconds=90_000)
    out = chat.send(Wake())
    [sent] = [a for a in out.actions if isinstance(a, SendTemplate)]
    assert sent.template["components"][0]["parameters"][0]["text"] == "Ana"
    assert texts(out) == []
    [handoff] = [a for a in out.actions if isinstance(a, Handoff)]
    assert (handoff.node, handoff.reason) == ("u", "window_closed")


def test_template_node() -> None:
    definition = {"name": "t", "entry": "t", "nodes": [{"id": "t", "type": "template",
                  "template": {"name": "hello", "language": {"code": "pt_BR"}}}]}  # fmt: skip
    out = Chat(bot(flow(definition))).send(Start("f1"))
    assert [a.template["name"] for a in out.actions if isinstance(a, SendTemplate)] == ["hello"]


def test_jump_within_and_across_flows_uses_the_other_flows_current_version() -> None:
    main = flow(
        {
            "name": "main",
            "entry": "j",
            "nodes": [{"id": "j", "type": "jump", "flow_id": "f2", "node": "two"}],
        }
    )
    other = flow({"name": "other", "entry": "one",
                  "nodes": [{"id": "one", "type": "end", "text": "one"},
                            {"id": "two", "type": "jump", "node": "one"}]}, "f2", 7)  # fmt: skip
    chat = Chat(bot(main, other))
    out = chat.send(Start("f1"))
    assert texts(out) == ["one"]
    assert chat.state is not None and (chat.state.flow_id, chat.state.version) == ("f2", 7)
    assert ("j", "completed") in counts(out) and ("two", "completed") in counts(out)


def test_loop_guard_ends_and_hands_off() -> None:
    loop = flow({"name": "loop", "entry": "a",
                 "nodes": [{"id": "a", "type": "set_variable", "variable": "x", "value": "1",
                            "next": "b"},
                           {"id": "b", "type": "jump", "node": "a"}]})  # fmt: skip
    chat = Chat(bot(loop, max_steps=10))
    out = chat.send(Start("f1"))
    [handoff] = [a for a in out.actions if isinstance(a, Handoff)]
    assert handoff.reason.startswith("loop_guard")
    assert chat.state is not None and chat.state.status == "handed_off"
    assert sum(1 for _, kind in counts(out) if kind == "entered") == 10


def test_session_expires_with_its_message_and_counts_a_drop() -> None:
    chat = Chat(bot(flow(LEAD_CAPTURE), session_timeout_seconds=600, expiry_message="Bye for now"))
    chat.say("start")
    chat.now += timedelta(seconds=599)
    assert chat.send(Wake()).actions == []
    chat.now += timedelta(seconds=1)
    out = chat.send(Wake())
    assert texts(out) == ["Bye for now"] and counts(out) == [("ask_email", "dropped")]
    assert chat.state is not None and chat.state.status == "expired"


def test_handoff_node_carries_assignment_and_collected_variables() -> None:
    definition = {"name": "h", "entry": "v",
                  "nodes": [{"id": "v", "type": "set_variable", "variable": "topic",
                             "value": "billing", "next": "h"},
                            {"id": "h", "type": "handoff", "text": "One moment",
                             "assign_to": {"team": "billing"}}]}  # fmt: skip
    out = Chat(bot(flow(definition))).send(Start("f1"))
    [handoff] = [a for a in out.actions if isinstance(a, Handoff)]
    assert (handoff.team, handoff.variables) == ("billing", {"topic": "billing"})
    assert texts(out) == ["One moment"]


def test_a_running_session_keeps_its_version() -> None:
    v1 = flow(LEAD_CAPTURE, version=1)
    changed = {**LEAD_CAPTURE, "nodes": [dict(n) for n in LEAD_CAPTURE["nodes"]]}
    changed["nodes"][1]["text"] = "v2 menu"
    chat = Chat(bot(v1))
    chat.say("start")
    chat.bot = bot(flow(changed, version=2))
    out = chat.say("a@b.co")
    assert texts(out) == ["Thanks a@b.co! Anything else?"]
    assert chat.state is not None and chat.state.version == 1


def test_the_engine_imports_no_database_or_http_code() -> None:
    forbidden = ("sqlalchemy", "aiohttp", "httpx", "fastapi", "pytake.models", "pytake.db",
                 "asyncpg", "aiosqlite", "redis", "socket")  # fmt: skip
    engine = Path(__file__).resolve().parents[3] / "src" / "pytake" / "chatbot" / "engine"
    for source in engine.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{source.name} imports {name}"
                if name.startswith("pytake."):
                    assert name.startswith("pytake.chatbot.engine"), f"{source.name}: {name}"

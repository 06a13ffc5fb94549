"""POST /v1/messages through real HTTP against the simulator: every type, exact Graph bodies,
variables, the customer-service window, consent, idempotency, failures and retries."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.message.sending.support import Shop, eventually, new_customer, sent_with_callback

# type → (request object, the object the Graph API must receive)
CASES: dict[str, tuple[Any, Any]] = {
    "text": ({"body": "Olá!"}, {"body": "Olá!"}),
    "image": (
        {"url": "https://example.com/a.jpg", "caption": "Promo"},
        {"link": "https://example.com/a.jpg", "caption": "Promo"},
    ),
    "video": (
        {"link": "https://example.com/a.mp4", "caption": "Clip"},
        {"link": "https://example.com/a.mp4", "caption": "Clip"},
    ),
    "audio": ({"link": "https://example.com/a.ogg"}, {"link": "https://example.com/a.ogg"}),
    "document": (
        {"link": "https://example.com/a.pdf", "filename": "a.pdf", "caption": "Invoice"},
        {"link": "https://example.com/a.pdf", "filename": "a.pdf", "caption": "Invoice"},
    ),
    "sticker": ({"link": "https://example.com/a.webp"}, {"link": "https://example.com/a.webp"}),
    "location": (
        {"latitude": -23.5, "longitude": -46.6, "name": "Shop", "address": "Rua A, 1"},
        {"latitude": -23.5, "longitude": -46.6, "name": "Shop", "address": "Rua A, 1"},
    ),
    "interactive": (
        {
            "type": "button",
            "body": {"text": "Escolha uma opção:"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "btn_1", "title": "Opção 1"}},
                    {"type": "reply", "reply": {"id": "btn_2", "title": "Opção 2"}},
                ]
            },
        },
        None,
    ),
}
CASES["interactive"] = (CASES["interactive"][0], CASES["interactive"][0])
LIST = {
    "type": "list",
    "header": {"type": "text", "text": "Menu"},
    "body": {"text": "Pick one"},
    "footer": {"text": "Shop"},
    "action": {
        "button": "Options",
        "sections": [
            {"title": "Main", "rows": [{"id": "r1", "title": "Row 1", "description": "opt"}]},
            {"title": "More", "rows": [{"id": "r2", "title": "Row 2"}]},
        ],
    },
}
CTA = {
    "type": "cta_url",
    "body": {"text": "See it"},
    "action": {
        "name": "cta_url",
        "parameters": {"display_text": "Open", "url": "https://x.example"},
    },
}
CONTACTS = [{"name": {"formatted_name": "Ana Lima"}, "phones": [{"phone": "+5511999990000"}]}]


async def _send(
    http: httpx.AsyncClient, shop: Shop, body: dict[str, Any], **kw: Any
) -> httpx.Response:
    return await http.post("/v1/messages", json=body, headers={**shop.headers, **kw})


def _expected(to: str, kind: str, obj: Any, message_id: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: obj,
        "biz_opaque_callback_data": message_id,
    }


@pytest.mark.parametrize("kind", list(CASES))
async def test_each_type_reaches_graph_with_the_exact_body(
    http: httpx.AsyncClient, shop: Shop, kind: str
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    request, graph = CASES[kind]
    resp = await _send(http, shop, {"to": "+" + wa_id, "type": kind, kind: request})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "sent" and body["whatsapp_message_id"].startswith("wamid.")
    assert body["to"] == "+" + wa_id
    sent = shop.sim.state.find_sent(body["whatsapp_message_id"])
    assert sent is not None
    assert sent.body == _expected(wa_id, kind, graph, body["id"])


@pytest.mark.parametrize(
    ("kind", "obj"),
    [("interactive", LIST), ("interactive", CTA), ("contacts", CONTACTS)],
    ids=["list", "cta_url", "contacts"],
)
async def test_list_cta_and_contacts_bodies(
    http: httpx.AsyncClient, shop: Shop, kind: str, obj: Any
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    resp = await _send(http, shop, {"to": "+" + wa_id, "type": kind, kind: obj})
    assert resp.status_code == 201, resp.text
    sent = shop.sim.state.find_sent(resp.json()["whatsapp_message_id"])
    assert sent is not None
    assert sent.body == _expected(wa_id, kind, obj, resp.json()["id"])


async def test_reply_and_reaction_carry_the_customer_message_id(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    inbound = await shop.customer_writes(wa_id)
    reply = await _send(
        http,
        shop,
        {"to": wa_id, "type": "text", "text": {"body": "Sure"}, "context": {"message_id": inbound}},
    )
    assert reply.status_code == 201, reply.text
    sent = shop.sim.state.find_sent(reply.json()["whatsapp_message_id"])
    assert sent is not None and sent.body["context"] == {"message_id": inbound}
    reaction = {"message_id": inbound, "emoji": "👍"}
    resp = await _send(http, shop, {"to": wa_id, "type": "reaction", "reaction": reaction})
    assert resp.status_code == 201, resp.text
    sent = shop.sim.state.find_sent(resp.json()["whatsapp_message_id"])
    assert sent is not None and sent.body["reaction"] == reaction


async def test_template_with_components_is_allowed_outside_the_window(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    shop.sim.register_template(shop.number.waba, "welcome_message", "pt_BR", body="Olá {{1}}!")
    template = {
        "name": "welcome_message",
        "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{name}}"}]}],
    }
    wa_id = new_customer()  # never wrote
    resp = await _send(
        http,
        shop,
        {
            "to": "+" + wa_id,
            "type": "template",
            "template": template,
            "variables": {"name": "João"},
        },
    )
    assert resp.status_code == 201, resp.text
    sent = shop.sim.state.find_sent(resp.json()["whatsapp_message_id"])
    assert sent is not None
    assert sent.body["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "João"}
    ]
    # The unknown number became a contact.
    contacts = await http.get("/v1/contacts", params={"search": wa_id}, headers=shop.headers)
    assert contacts.status_code == 200 and contacts.json()["meta"]["total"] == 1


async def test_variables_render_from_request_and_contact(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    text = {"body": "Olá {{contact.name}}! Sua senha é {{code}}. {{ contact.city | default('-') }}"}
    resp = await _send(
        http, shop, {"to": wa_id, "type": "text", "text": text, "variables": {"code": "123456"}}
    )
    assert resp.status_code == 201, resp.text
    sent = shop.sim.state.find_sent(resp.json()["whatsapp_message_id"])
    assert sent is not None and sent.body["text"]["body"] == "Olá Maria! Sua senha é 123456. -"


async def test_undefined_variable_is_a_422_naming_it(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    text = {"body": "Olá {{name}}! Código {{code}}"}
    resp = await _send(
        http, shop, {"to": wa_id, "type": "text", "text": text, "variables": {"name": "Ana"}}
    )
    assert resp.status_code == 422, resp.text
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["variables.code"]
    assert shop.sim.state.sent_messages(to=wa_id) == []


async def test_sandbox_refuses_code_in_placeholders(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    text = {"body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
    resp = await _send(http, shop, {"to": wa_id, "type": "text", "text": text})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "text.body"


def _buttons(n: int, title: str = "Ok") -> dict[str, Any]:
    return {
        "type": "button",
        "body": {"text": "Choose"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": f"b{i}", "title": title}} for i in range(n)
            ]
        },
    }


def _list(rows: int) -> dict[str, Any]:
    return {
        "type": "list",
        "body": {"text": "Pick"},
        "action": {
            "button": "Open",
            "sections": [{"rows": [{"id": f"r{i}", "title": "Row"} for i in range(rows)]}],
        },
    }


INVALID = [
    ({"type": "text", "text": {"body": "x" * 4097}}, "text.body"),
    ({"type": "text"}, "text"),
    ({"type": "text", "text": {"body": ""}}, "text.body"),
    (
        {"type": "interactive", "interactive": {**_buttons(1), "body": {"text": "b" * 1025}}},
        "interactive.body.text",
    ),
    ({"type": "text", "text": {"body": "a"}, "image": {"id": "1"}}, "image"),
    ({"type": "interactive", "interactive": _buttons(4)}, "interactive.action.buttons"),
    (
        {"type": "interactive", "interactive": _buttons(2, "x" * 21)},
        "interactive.action.buttons.0.reply.title",
    ),
    ({"type": "interactive", "interactive": _list(11)}, "interactive.action.sections.0.rows"),
    (
        {"type": "interactive", "interactive": {**_list(1), "action": {"button": "Open"}}},
        "interactive.action.sections",
    ),
    (
        {"type": "image", "image": {"link": "https://e.com/a.jpg", "caption": "c" * 1025}},
        "image.caption",
    ),
    ({"type": "image", "image": {"link": "https://e.com/a.jpg", "id": "1"}}, "image"),
    ({"type": "document", "document": {"caption": "no media"}}, "document"),
    ({"type": "location", "location": {"latitude": 91, "longitude": 0}}, "location.latitude"),
    ({"type": "text", "text": {"body": "a"}, "to": "12"}, "to"),
    ({"type": "fax", "text": {"body": "a"}}, "type"),
]


@pytest.mark.parametrize(("patch", "field"), INVALID, ids=[f for _, f in INVALID])
async def test_each_validation_error_names_the_field(
    http: httpx.AsyncClient, shop: Shop, patch: dict[str, Any], field: str
) -> None:
    body = {"to": "+5511912345678", **patch}
    resp = await _send(http, shop, body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]]


async def test_rendered_text_over_the_limit_is_refused(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    text = {"body": "{{big}}"}
    resp = await _send(
        http, shop, {"to": wa_id, "type": "text", "text": text, "variables": {"big": "x" * 5000}}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "text.body"


async def test_free_form_outside_the_window_is_refused(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    resp = await _send(http, shop, {"to": "+" + wa_id, "type": "text", "text": {"body": "Hi"}})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "outside_customer_service_window"
    # Neither document mentions the window: the message says what to do instead.
    message = resp.json()["error"]["message"]
    assert "24 hours" in message and "customer writes first" in message
    assert "POST /v1/messages with type 'template'" in message
    assert shop.sim.state.sent_messages(to=wa_id) == []


@pytest.mark.parametrize(
    ("action", "code"), [("opt-out", "contact_opted_out"), ("block", "contact_blocked")]
)
async def test_opted_out_and_blocked_contacts_are_refused(
    http: httpx.AsyncClient, shop: Shop, action: str, code: str
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    found = await http.get("/v1/contacts", params={"search": wa_id}, headers=shop.headers)
    contact_id = found.json()["data"][0]["id"]
    changed = await http.post(f"/v1/contacts/{contact_id}/{action}", headers=shop.headers)
    assert changed.status_code == 200, changed.text
    shop.sim.register_template(shop.number.waba, "hello", "en_US", body="Hello")
    template = {"name": "hello", "language": {"code": "en_US"}}
    for body in (
        {"type": "text", "text": {"body": "Hi"}},
        {"type": "template", "template": template},
    ):
        resp = await _send(http, shop, {"to": wa_id, **body})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["code"] == code
    assert shop.sim.state.sent_messages(to=wa_id) == []


async def test_idempotency_replay_and_conflict(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    body = {"to": wa_id, "type": "text", "text": {"body": "Once"}}
    first = await _send(http, shop, body, **{"Idempotency-Key": "order-42"})
    again = await _send(http, shop, body, **{"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert len(shop.sim.state.sent_messages(to=wa_id)) == 1
    other = {**body, "text": {"body": "Twice"}}
    conflict = await _send(http, shop, other, **{"Idempotency-Key": "order-42"})
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"]["code"] == "idempotency_key_conflict"
    assert len(shop.sim.state.sent_messages(to=wa_id)) == 1


async def test_idempotency_replays_whatsapps_refusal_without_sending_again(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    shop.sim.state.close_window(shop.number.pnid, wa_id)  # Meta refuses it (131047)
    body = {"to": wa_id, "type": "text", "text": {"body": "Late"}}
    first = await _send(http, shop, body, **{"Idempotency-Key": "order-43"})
    assert first.status_code == 422, first.text
    assert first.json()["error"]["code"] == "whatsapp_api_error"
    attempts = len(shop.sim.state.sent_messages(to=wa_id))
    again = await _send(http, shop, body, **{"Idempotency-Key": "order-43"})
    assert again.status_code == 422 and again.json() == first.json()
    assert len(shop.sim.state.sent_messages(to=wa_id)) == attempts


async def test_statuses_move_forward_and_show_on_get(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    resp = await _send(http, shop, {"to": wa_id, "type": "text", "text": {"body": "Track me"}})
    assert resp.status_code == 201, resp.text
    message_id = resp.json()["id"]

    async def read() -> dict[str, Any] | None:
        got = await http.get(f"/v1/messages/{message_id}", headers=shop.headers)
        assert got.status_code == 200, got.text
        return got.json() if got.json()["status"] == "read" else None

    message = await eventually(read)
    assert message["sent_at"] and message["delivered_at"] and message["read_at"]
    assert message["sent_at"] <= message["delivered_at"] <= message["read_at"]
    assert message["direction"] == "outbound" and message["content"] == {"text": "Track me"}
    assert message["failed_at"] is None and message["error"] is None


@pytest.mark.parametrize(
    ("code", "kind"), [(131047, "text"), (132001, "template")], ids=["131047", "132001"]
)
async def test_non_retryable_meta_errors_are_mapped_and_stored(
    http: httpx.AsyncClient, shop: Shop, code: int, kind: str
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    if code == 131047:  # our window is open but Meta's closed (e.g. the clocks disagree)
        shop.sim.state.close_window(shop.number.pnid, wa_id)
        body: dict[str, Any] = {"type": "text", "text": {"body": "Late"}}
    else:  # the template is not approved in that language
        body = {"type": "template", "template": {"name": "nope", "language": {"code": "xx_XX"}}}
    resp = await _send(http, shop, {"to": wa_id, **body})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "whatsapp_api_error"
    assert error["whatsapp_error"]["code"] == code
    assert str(code) in error["message"]
    stored = await http.get(f"/v1/messages/{error['message_id']}", headers=shop.headers)
    assert stored.json()["status"] == "failed" and stored.json()["failed_at"]
    assert stored.json()["error"]["code"] == code
    assert stored.json()["attempts"] == 1


async def test_throttled_then_sent_after_retry(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    shop.sim.set_faults(error={"code": 130429, "count": 2, "channel": shop.number.pnid})
    resp = await _send(http, shop, {"to": wa_id, "type": "text", "text": {"body": "Retry"}})
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "queued" and resp.json()["whatsapp_message_id"] is None
    message_id = resp.json()["id"]

    async def sent() -> dict[str, Any] | None:
        got = (await http.get(f"/v1/messages/{message_id}", headers=shop.headers)).json()
        return got if got["whatsapp_message_id"] else None

    message = await eventually(sent)
    assert message["attempts"] == 3
    assert len(sent_with_callback(shop.sim, message_id)) == 1


async def test_provider_down_queues_then_delivers_when_back(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    port = int(shop.sim.base_url.rsplit(":", 1)[1])
    await shop.sim.stop()
    try:
        resp = await _send(http, shop, {"to": wa_id, "type": "text", "text": {"body": "Down"}})
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "queued"
    finally:
        await shop.sim.start(port=port)
    message_id = resp.json()["id"]

    async def delivered() -> bool:
        got = (await http.get(f"/v1/messages/{message_id}", headers=shop.headers)).json()
        return got["status"] in ("delivered", "read")

    await eventually(delivered)
    assert len(sent_with_callback(shop.sim, message_id)) == 1


async def test_slow_provider_answers_202_and_the_send_completes(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    shop.sim.set_faults(latency_ms=3000)
    try:
        resp = await _send(http, shop, {"to": wa_id, "type": "text", "text": {"body": "Slow"}})
    finally:
        shop.sim.set_faults(latency_ms=0)
    assert resp.status_code == 202, resp.text
    message_id = resp.json()["id"]

    async def sent() -> bool:
        got = (await http.get(f"/v1/messages/{message_id}", headers=shop.headers)).json()
        return got["whatsapp_message_id"] is not None

    await eventually(sent)
    assert len(sent_with_callback(shop.sim, message_id)) == 1


async def test_message_of_another_organisation_is_not_found(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    from tests.conftest import register_org

    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    resp = await _send(http, shop, {"to": wa_id, "type": "text", "text": {"body": "Mine"}})
    other = await register_org(http, "Other")
    got = await http.get(f"/v1/messages/{resp.json()['id']}", headers=other.headers)
    assert got.status_code == 404


async def test_send_needs_the_messages_send_scope(http: httpx.AsyncClient, shop: Shop) -> None:
    from tests.conftest import create_api_key

    key = await create_api_key(http, shop.org, ["contacts:read"])
    resp = await http.post(
        "/v1/messages",
        json={"to": "+5511912345678", "type": "text", "text": {"body": "x"}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.status_code == 403

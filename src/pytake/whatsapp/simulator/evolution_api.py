"""The fake Evolution API v2 server: instances, QR pairing, webhook config, sends, webhooks."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from typing import Any

from aiohttp import web

from pytake.whatsapp.evolution.client import BAILEYS
from pytake.whatsapp.simulator.emitter import WebhookEmitter
from pytake.whatsapp.simulator.evolution_payloads import (
    config_name,
    customer_upsert,
    envelope,
    qr_payload,
    sent_message_object,
)
from pytake.whatsapp.simulator.state import (
    CustomerMessage,
    EvolutionInstance,
    PhoneEcho,
    SentMessage,
    SimState,
    new_evolution_id,
)

_REQUIRED: dict[str, tuple[str, ...]] = {
    "sendText": ("number", "text"),
    "sendMedia": ("number", "mediatype", "media"),
    "sendWhatsAppAudio": ("number", "audio"),
    "sendSticker": ("number", "sticker"),
    "sendLocation": ("number", "latitude", "longitude", "name", "address"),
    "sendContact": ("number", "contact"),
    "sendReaction": ("key", "reaction"),
    "sendButtons": ("number", "buttons"),
    "sendList": ("number", "title", "buttonText", "sections"),
    "sendTemplate": ("number", "name", "language"),
}
_STATUS_SEQUENCE = ("SERVER_ACK", "DELIVERY_ACK", "READ")


class EvolutionFault(Exception):
    """An Evolution error answer `{"status", "error", "response": {"message"}}`."""

    _REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message

    def response(self) -> web.Response:
        """Render as Evolution does (401 carries a bare string)."""
        message = (
            self.message if self.status == 401 or isinstance(self.message, list) else [self.message]
        )
        body = {
            "status": self.status,
            "error": self._REASONS.get(self.status, "Error"),
            "response": {"message": message},
        }
        return web.json_response(body, status=self.status)


class EvolutionApi:
    """Handlers of the fake Evolution server and the customer-side actions on it."""

    def __init__(self, state: SimState, emitter: WebhookEmitter) -> None:
        self.state = state
        self.emitter = emitter
        self.server_url = "http://127.0.0.1"  # set to the real address once listening

    def routes(self) -> list[web.RouteDef]:
        """The Evolution routes."""
        return [
            web.post("/instance/create", self.create),
            web.get("/instance/connect/{instance}", self.connect),
            web.post("/instance/restart/{instance}", self.connect),
            web.get("/instance/connectionState/{instance}", self.connection_state),
            web.delete("/instance/logout/{instance}", self.logout),
            web.delete("/instance/delete/{instance}", self.delete),
            web.get("/instance/fetchInstances", self.fetch_instances),
            web.post("/webhook/set/{instance}", self.set_webhook),
            web.get("/webhook/find/{instance}", self.find_webhook),
            web.post("/message/{action}/{instance}", self.send),
            web.post("/chat/markMessageAsRead/{instance}", self.mark_read),
            web.post("/chat/getBase64FromMediaMessage/{instance}", self.media_base64),
        ]

    # -- auth -----------------------------------------------------------------------------

    def _global(self, request: web.Request) -> None:
        key = request.headers.get("apikey", "")
        if not secrets.compare_digest(key, self.state.settings.evolution_api_key):
            raise EvolutionFault(401, "Unauthorized")

    def _instance(self, request: web.Request) -> EvolutionInstance:
        key = request.headers.get("apikey", "")
        name = request.match_info["instance"]
        instance = self.state.instances.get(name)
        allowed = secrets.compare_digest(key, self.state.settings.evolution_api_key) or (
            instance is not None and secrets.compare_digest(key, instance.token)
        )
        if not allowed:
            raise EvolutionFault(401, "Unauthorized")
        if instance is None:
            raise EvolutionFault(404, f'The "{name}" instance does not exist')
        return instance

    # -- lifecycle ------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        """`POST /instance/create`."""
        self._global(request)
        body = await _json(request)
        name = body.get("instanceName")
        if not isinstance(name, str) or not name:
            raise EvolutionFault(400, ["instanceName is required"])
        if name in self.state.instances:
            raise EvolutionFault(403, [f'This name "{name}" is already in use.'])
        integration = str(body.get("integration") or BAILEYS)
        token = str(body.get("token") or str(uuid.uuid4()).upper())
        instance = EvolutionInstance(
            name, token, integration, str(uuid.uuid4()), number=body.get("number")
        )
        if isinstance(body.get("webhook"), dict):
            instance.webhook = _webhook_config(body["webhook"])
        self.state.instances[name] = instance
        qrcode = None
        if body.get("qrcode") and integration == BAILEYS:
            qrcode = self._new_qr(instance)
        elif integration != BAILEYS:
            instance.state = "open"  # Cloud-backed instances need no pairing
        return web.json_response(self._create_answer(instance, qrcode, request), status=201)

    def _create_answer(
        self, instance: EvolutionInstance, qrcode: dict[str, Any] | None, request: web.Request
    ) -> dict[str, Any]:
        webhook = instance.webhook or {}
        answer: dict[str, Any] = {
            "instance": {
                "instanceName": instance.name,
                "instanceId": instance.instance_id,
                "integration": instance.integration,
                "webhookWaBusiness": None,
                "accessTokenWaBusiness": "",
                "status": instance.state,
            },
            "hash": instance.token,
            "webhook": {
                "webhookUrl": webhook.get("url"),
                "webhookHeaders": webhook.get("headers", {}),
                "webhookByEvents": webhook.get("byEvents", False),
                "webhookBase64": webhook.get("base64", False),
            },
            "websocket": {},
            "rabbitmq": {},
            "nats": {},
            "sqs": {},
            "settings": {"rejectCall": False},
        }
        if instance.integration != BAILEYS:
            answer["instance"]["webhookWaBusiness"] = f"{_server_url(request)}/webhook/meta"
            answer["instance"]["accessTokenWaBusiness"] = "evolution"
        if qrcode is not None:
            answer["qrcode"] = qrcode
        return answer

    def _new_qr(self, instance: EvolutionInstance) -> dict[str, Any] | None:
        """Issue the next QR (or give up past the limit, as Evolution does)."""
        instance.qr_count += 1
        if instance.qr_count > self.state.settings.qrcode_limit:
            instance.state = "refused"
            message = {"message": "QR code limit reached, please login again", "statusCode": 500}
            self.emit(instance, "qrcode.updated", message)
            self.emit(
                instance,
                "connection.update",
                {"instance": instance.name, "state": "refused", "statusReason": 500},
            )
            return None
        instance.state = "connecting"
        qr = qr_payload(instance.qr_count)
        self.emit(instance, "qrcode.updated", {"qrcode": {"instance": instance.name, **qr}})
        return qr

    async def connect(self, request: web.Request) -> web.Response:
        """`GET /instance/connect/{i}`: a QR while not open; the state once open."""
        instance = self._instance(request)
        if instance.state == "open":
            return web.json_response(_state_answer(instance))
        qr = self._new_qr(instance)
        if qr is None:
            # Evolution catches its own failure here and answers 200 with an error body.
            return web.json_response({"error": True, "message": "QR code limit reached"})
        if request.query.get("number"):
            qr["pairingCode"] = secrets.token_hex(4).upper()
        return web.json_response(qr)

    async def connection_state(self, request: web.Request) -> web.Response:
        """`GET /instance/connectionState/{i}`."""
        return web.json_response(_state_answer(self._instance(request)))

    async def logout(self, request: web.Request) -> web.Response:
        """`DELETE /instance/logout/{i}` (400 when not connected)."""
        instance = self._instance(request)
        if instance.state != "open":
            raise EvolutionFault(400, [f'The "{instance.name}" instance is not connected'])
        self.set_state(instance, "close", 401)
        return web.json_response(
            {"status": "SUCCESS", "error": False, "response": {"message": "Instance logged out"}}
        )

    async def delete(self, request: web.Request) -> web.Response:
        """`DELETE /instance/delete/{i}`."""
        instance = self._instance(request)
        if instance.state == "open":
            self.set_state(instance, "close", 401)
        del self.state.instances[instance.name]
        return web.json_response(
            {"status": "SUCCESS", "error": False, "response": {"message": "Instance deleted"}}
        )

    async def fetch_instances(self, request: web.Request) -> web.Response:
        """`GET /instance/fetchInstances` (an instance token sees only its instance)."""
        key = request.headers.get("apikey", "")
        is_global = secrets.compare_digest(key, self.state.settings.evolution_api_key)
        rows = [
            i.row()
            for i in self.state.instances.values()
            if (is_global or secrets.compare_digest(key, i.token))
            and request.query.get("instanceName") in (None, i.name)
        ]
        if not is_global and not rows:
            raise EvolutionFault(401, "Unauthorized")
        return web.json_response(rows)

    # -- webhook config -------------------------------------------------------------------

    async def set_webhook(self, request: web.Request) -> web.Response:
        """`POST /webhook/set/{i}` with the nested v2 body."""
        instance = self._instance(request)
        body = await _json(request)
        webhook = body.get("webhook")
        if not isinstance(webhook, dict):
            raise EvolutionFault(400, ['instance requires property "webhook"'])
        missing = [key for key in ("enabled", "url") if key not in webhook]
        if missing:
            raise EvolutionFault(400, [f'webhook requires property "{key}"' for key in missing])
        instance.webhook = _webhook_config(webhook)
        return web.json_response(self._webhook_row(instance), status=201)

    async def find_webhook(self, request: web.Request) -> web.Response:
        """`GET /webhook/find/{i}`."""
        instance = self._instance(request)
        return web.json_response(self._webhook_row(instance) if instance.webhook else None)

    def _webhook_row(self, instance: EvolutionInstance) -> dict[str, Any]:
        webhook = instance.webhook or {}
        return {
            "id": instance.instance_id,
            "url": webhook.get("url"),
            "headers": webhook.get("headers", {}),
            "enabled": webhook.get("enabled", True),
            "events": webhook.get("events", []),
            "webhookByEvents": webhook.get("byEvents", False),
            "webhookBase64": webhook.get("base64", False),
            "instanceId": instance.instance_id,
        }

    # -- sends ----------------------------------------------------------------------------

    async def send(self, request: web.Request) -> web.Response:
        """`POST /message/send*/{i}`: validate, store, answer 201, then emit statuses."""
        instance = self._instance(request)
        action = request.match_info["action"]
        if action not in _REQUIRED:
            raise EvolutionFault(404, f"Cannot POST /message/{action}/{instance.name}")
        body = await _json(request)
        self._inject_error(instance)
        number = self._check_send(instance, action, body)
        message_id = new_evolution_id()
        remote = f"{number}@s.whatsapp.net"
        now = int(self.state.clock())
        answer = sent_message_object(action, body, message_id, remote, instance.instance_id, now)
        kind = answer["messageType"]
        self.state.sent.append(
            SentMessage(
                message_id, "evolution", instance.name, number, kind, body, self.state.clock()
            )
        )
        self.emit(instance, "send.message", answer)
        # Baileys accepts buttons/lists but phones never show them: no delivery follows.
        shown = instance.integration != BAILEYS or action not in ("sendButtons", "sendList")
        self.emitter.spawn(self._status_sequence(instance, message_id, remote, shown))
        return web.json_response(answer, status=201)

    def _inject_error(self, instance: EvolutionInstance) -> None:
        fault = self.state.faults.take(self.state.faults.errors, "evolution", instance.name)
        if fault is not None:
            raise EvolutionFault(
                fault.http_status, [fault.message or f"Simulated error {fault.code}"]
            )

    def _check_send(self, instance: EvolutionInstance, action: str, body: dict[str, Any]) -> str:
        missing = [key for key in _REQUIRED[action] if body.get(key) is None]
        if missing:
            raise EvolutionFault(400, [f'instance requires property "{key}"' for key in missing])
        if action == "sendTemplate" and instance.integration == BAILEYS:
            raise EvolutionFault(400, ["Method not available in the Baileys service"])
        if instance.state != "open":
            raise EvolutionFault(400, ["Connection Closed"])
        target = body.get("number") or (body.get("key") or {}).get("remoteJid", "")
        number = str(target).split("@")[0].lstrip("+")
        if not self.state.on_whatsapp(number):
            jid = f"{number}@s.whatsapp.net"
            raise EvolutionFault(400, [{"jid": jid, "exists": False, "number": number}])
        return number

    async def _status_sequence(
        self, instance: EvolutionInstance, message_id: str, remote: str, shown: bool
    ) -> None:
        settings, faults = self.state.settings, self.state.faults
        plan = list(_STATUS_SEQUENCE if settings.auto_read else _STATUS_SEQUENCE[:2])
        if not shown:
            plan = plan[:1]
        dropped = {"SERVER_ACK": "sent", "DELIVERY_ACK": "delivered", "READ": "read"}
        plan = [s for s in plan if dropped[s] not in faults.drop_statuses]
        if faults.reorder_statuses:
            plan.reverse()
        sent = self.state.find_sent(message_id)
        for index, status in enumerate(plan):
            await asyncio.sleep(settings.status_delays[min(index, 2)])
            if sent is not None:
                sent.statuses.append(dropped[status])
            data = {
                "keyId": message_id,
                "remoteJid": remote,
                "fromMe": True,
                "participant": None,
                "status": status,
                "instanceId": instance.instance_id,
                "messageId": str(uuid.uuid4()),
            }
            for _ in range(2 if faults.duplicate_webhooks else 1):
                await self.deliver(instance, "messages.update", data)

    # -- chat -----------------------------------------------------------------------------

    async def mark_read(self, request: web.Request) -> web.Response:
        """`POST /chat/markMessageAsRead/{i}`."""
        instance = self._instance(request)
        body = await _json(request)
        items = body.get("readMessages")
        if not isinstance(items, list) or not items:
            raise EvolutionFault(400, ['instance requires property "readMessages"'])
        for item in items:
            self.state.read_marks.append({"channel": instance.name, "message_id": item.get("id")})
        return web.json_response({"message": "Read messages", "read": "success"}, status=201)

    async def media_base64(self, request: web.Request) -> web.Response:
        """`POST /chat/getBase64FromMediaMessage/{i}` for a customer's media message."""
        instance = self._instance(request)
        body = await _json(request)
        key_id = ((body.get("message") or {}).get("key") or {}).get("id")
        media = self.state.media.get(str(key_id))
        if media is None or media[2] != instance.name:
            raise EvolutionFault(400, [f"Message {key_id} not found"])
        data, mime, _ = media
        return web.json_response(
            {
                "mediaType": mime.split("/")[0],
                "mimetype": mime,
                "size": {"fileLength": len(data)},
                "base64": base64.b64encode(data).decode(),
            },
            status=201,
        )

    # -- simulated phone side ---------------------------------------------------------------

    def set_state(self, instance: EvolutionInstance, state: str, reason: int = 200) -> None:
        """Change the connection state and emit `connection.update`."""
        instance.state = state
        data: dict[str, Any] = {"instance": instance.name, "state": state, "statusReason": reason}
        if state == "open" and instance.owner_number:
            data.update(
                wuid=f"{instance.owner_number}@s.whatsapp.net", profileName=instance.profile_name
            )
        self.emit(instance, "connection.update", data)

    def scan(self, name: str, number: str, profile_name: str | None) -> EvolutionInstance:
        """The business's phone scanned the QR: the instance opens."""
        instance = self.state.instances[name]
        if instance.state == "open":
            return instance
        instance.owner_number = number
        instance.profile_name = profile_name
        self.set_state(instance, "open")
        return instance

    async def customer_sends(self, name: str, spec: dict[str, Any]) -> CustomerMessage:
        """A customer writes to the instance's number: post `messages.upsert`."""
        instance = self.state.instances[name]
        message_id = "3A" + secrets.token_hex(9).upper()
        with_base64 = bool((instance.webhook or {}).get("base64"))
        data, media = customer_upsert(
            spec, message_id, instance.instance_id, int(self.state.clock()), with_base64
        )
        if media is not None:
            self.state.media[message_id] = (
                media,
                data["message"][data["messageType"]]["mimetype"],
                name,
            )
        record = CustomerMessage(
            message_id,
            "evolution",
            name,
            str(spec["from"]),
            str(spec.get("type") or "text"),
            data,
            self.state.clock(),
        )
        self.state.received.append(record)
        record.webhook_status = await self.deliver(instance, "messages.upsert", data)
        return record

    async def business_phone_sends(self, name: str, to: str, spec: dict[str, Any]) -> PhoneEcho:
        """Someone at the business sends from the instance's own phone: Evolution posts
        `messages.upsert` with `key.fromMe` (no `send.message`: not sent through its API), the
        media fetched by key id through getBase64FromMediaMessage like a customer's."""
        instance = self.state.instances[name]
        message_id = "3EB0" + secrets.token_hex(8).upper()
        with_base64 = bool((instance.webhook or {}).get("base64"))
        data, media = customer_upsert(
            {**spec, "from": to}, message_id, instance.instance_id, int(self.state.clock()),
            with_base64,
        )  # fmt: skip
        data["key"]["fromMe"] = True
        data.update(pushName=instance.profile_name or "", status="SERVER_ACK")
        kind = str(spec.get("type") or "text")
        if media is not None:
            mime = data["message"][data["messageType"]]["mimetype"]
            self.state.media[message_id] = (media, mime, name)
        echo = PhoneEcho(message_id, name, to, kind, data)
        echo.webhook_status = await self.deliver(instance, "messages.upsert", data)
        return echo

    def emit(self, instance: EvolutionInstance, event: str, data: Any) -> None:
        """Post an event in the background (if the instance's webhook wants it)."""
        self.emitter.spawn(self.deliver(instance, event, data))

    async def deliver(self, instance: EvolutionInstance, event: str, data: Any) -> int | None:
        """Post an event now, honouring enabled/events/byEvents; returns the receiver's status."""
        webhook = instance.webhook
        if not webhook or not webhook.get("enabled", True) or not webhook.get("url"):
            return None
        events = webhook.get("events") or []
        if events and config_name(event) not in events:
            return None
        url = str(webhook["url"])
        if webhook.get("byEvents"):
            url = url.rstrip("/") + "/" + event.replace(".", "-")
        body = envelope(event, instance.name, data, url, instance.owner_number, self.server_url)
        return await self.emitter.post_evolution(url, dict(webhook.get("headers") or {}), body)


def _webhook_config(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "enabled": bool(raw.get("enabled", True)),
        "url": raw.get("url"),
        "headers": dict(raw.get("headers") or {}),
        "byEvents": bool(raw.get("byEvents", False)),
        "base64": bool(raw.get("base64", False)),
        "events": [str(e) for e in raw.get("events") or []],
    }


def _state_answer(instance: EvolutionInstance) -> dict[str, Any]:
    return {"instance": {"instanceName": instance.name, "state": instance.state}}


def _server_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise EvolutionFault(400, ["body is not valid JSON"]) from exc
    if not isinstance(body, dict):
        raise EvolutionFault(400, ["body must be a JSON object"])
    return body

"""The fake Graph API: messages, media, phone number info and templates under `/vNN.0/...`."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any

from aiohttp import web

from pytake.whatsapp.provider import MEDIA_TYPES, normalize_recipient
from pytake.whatsapp.simulator.emitter import WebhookEmitter
from pytake.whatsapp.simulator.graph_validation import GraphFault, validate_send
from pytake.whatsapp.simulator.meta_payloads import (
    customer_message,
    envelope,
    error_item,
    inbound_body,
    status_item,
)
from pytake.whatsapp.simulator.state import (
    BusinessNumber,
    CustomerMessage,
    ErrorFault,
    PhoneEcho,
    SentMessage,
    SimState,
    new_numeric_id,
    new_wamid,
)
from pytake.whatsapp.simulator.templates import TemplateRegistry

V = r"{version:v\d+\.\d+}"
_TITLES = {
    131047: "Re-engagement message",
    131026: "Message undeliverable",
    130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131053: "Media upload error",
}


def graph_fault_response(fault: GraphFault) -> web.Response:
    """Render a GraphFault as Meta does."""
    return web.json_response(fault.body(secrets.token_urlsafe(12)), status=fault.http_status)


class GraphApi:
    """Handlers of the fake Graph API."""

    def __init__(self, state: SimState, emitter: WebhookEmitter) -> None:
        self.state = state
        self.emitter = emitter
        self.templates = TemplateRegistry(state, emitter)

    def routes(self) -> list[web.RouteDef]:
        """The Graph routes (any `vNN.0` version segment)."""
        return [
            web.post(f"/{V}/{{node}}/messages", self.messages),
            web.post(f"/{V}/{{node}}/media", self.upload_media),
            web.get(f"/{V}/{{node}}/message_templates", self.list_templates),
            web.post(f"/{V}/{{node}}/message_templates", self.create_template),
            web.delete(f"/{V}/{{node}}/message_templates", self.delete_template),
            web.get(f"/{V}/{{node}}", self.get_node),
            web.delete(f"/{V}/{{node}}", self.delete_media),
            web.get("/lookaside/{media_id}", self.download_media),
        ]

    # -- auth -----------------------------------------------------------------------------

    def _token(self, request: web.Request) -> list[BusinessNumber]:
        header = request.headers.get("Authorization", "")
        token = (
            header[7:] if header.startswith("Bearer ") else request.query.get("access_token", "")
        )
        numbers = self.state.numbers_for_token(token) if token else []
        if not numbers:
            raise GraphFault(
                190,
                "Invalid OAuth access token - Cannot parse access token",
                http_status=401,
            )
        return numbers

    def _number(self, request: web.Request, node: str) -> BusinessNumber:
        for number in self._token(request):
            if number.phone_number_id == node:
                return number
        raise _unknown_object(node)

    # -- messages -------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """`POST /{phone_number_id}/messages`: send, or mark read."""
        number = self._number(request, request.match_info["node"])
        body = await _json_body(request)
        if body.get("status") == "read":
            return self._mark_read(number, body)
        self._inject_error(number)
        self._check_throughput(number)
        kind = validate_send(body, self.state, number.waba_id)
        to = normalize_recipient(str(body.get("to") or body.get("recipient")))
        async_error = self._pre_send_checks(number, to, kind) or self._vanishing_media(kind, body)
        message = SentMessage(
            new_wamid(), "cloud", number.phone_number_id, to, kind, body, self.state.clock()
        )
        self.state.sent.append(message)
        sent: dict[str, Any] = {"id": message.id}
        if kind == "template":
            sent["message_status"] = "accepted"
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": str(body.get("to")), "wa_id": to}],
            "messages": [sent],
        }
        # Flush the answer before statuses start, so "sent" cannot overtake the send response.
        response = web.json_response(answer)
        await response.prepare(request)
        await response.write_eof()
        self.emitter.spawn(self._status_sequence(number, message, async_error))
        return response

    def _check_throughput(self, number: BusinessNumber) -> None:
        limit = number.mps or self.state.settings.default_mps
        key = ("mps", number.phone_number_id)
        if not self.state.rates.hit(key, limit, self.state.settings.mps_period):
            raise GraphFault(
                130429,
                "Rate limit hit",
                details="Message failed to send because there were too many messages sent "
                "from this phone number in a short period of time.",
            )

    def _inject_error(self, number: BusinessNumber) -> None:
        fault = self.state.faults.take(self.state.faults.errors, "cloud", number.phone_number_id)
        if fault is not None:
            raise GraphFault(
                fault.code,
                fault.message or _TITLES.get(fault.code, "Injected error"),
                details=fault.message or f"Simulated error {fault.code}",
                http_status=fault.http_status,
            )

    def _pre_send_checks(self, number: BusinessNumber, to: str, kind: str) -> ErrorFault | None:
        """Window, pair rate and reachability; returns an error to report asynchronously."""
        pnid = number.phone_number_id
        settings = self.state.settings
        if kind != "template" and not self.state.window_open(pnid, to):
            mode = self.state.faults.window_mode or settings.window_mode
            details = (
                "Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number."
            )
            if mode == "sync":
                raise GraphFault(131047, "Re-engagement message", details=details)
            return ErrorFault(131047, message=details)
        if settings.pair_limit is not None:
            count, period = settings.pair_limit
            if not self.state.rates.hit(("pair", pnid, to), count, period):
                raise GraphFault(
                    131056,
                    _TITLES[131056],
                    details="Message failed to send because there were too many messages sent "
                    "from this phone number to the same phone number in a short period of time.",
                )
        if not self.state.on_whatsapp(to):
            return ErrorFault(
                131026, message="Message undeliverable: the recipient is not a WhatsApp user."
            )
        return self.state.faults.take(self.state.faults.async_errors, "cloud", pnid)

    def _vanishing_media(self, kind: str, body: dict[str, Any]) -> ErrorFault | None:
        """The `vanish_sent_media` fault: a send by media id is accepted, then the id is
        forgotten (a later send naming it is refused) and the send reported `failed` 131053."""
        faults = self.state.faults
        media = body.get(kind)
        if faults.vanish_sent_media <= 0 or kind not in MEDIA_TYPES or not isinstance(media, dict):
            return None
        media_id = media.get("id")
        if not media_id:
            return None
        faults.vanish_sent_media -= 1
        self.state.media.pop(str(media_id), None)
        return ErrorFault(
            131053, message=f"Media upload error: the media id {media_id} is not available"
        )

    def _mark_read(self, number: BusinessNumber, body: dict[str, Any]) -> web.Response:
        message_id = body.get("message_id")
        if body.get("messaging_product") != "whatsapp" or not isinstance(message_id, str):
            raise GraphFault(100, "The parameter message_id is required.")
        known = any(
            m.id == message_id and m.channel == number.phone_number_id for m in self.state.received
        )
        if not known:
            raise GraphFault(100, "Invalid parameter", details=f"message {message_id} is unknown")
        self.state.read_marks.append(
            {
                "channel": number.phone_number_id,
                "message_id": message_id,
                "typing": "typing_indicator" in body,
            }
        )
        return web.json_response({"success": True})

    async def _status_sequence(
        self, number: BusinessNumber, message: SentMessage, error: ErrorFault | None
    ) -> None:
        settings, faults = self.state.settings, self.state.faults
        plan = ["sent", "delivered", "read"] if settings.auto_read else ["sent", "delivered"]
        if error is not None:
            message.error_code = error.code
            plan = ["failed"]
        plan = [s for s in plan if s not in faults.drop_statuses]
        if faults.reorder_statuses:
            plan.reverse()
        for index, status in enumerate(plan):
            await asyncio.sleep(settings.status_delays[min(index, 2)])
            message.statuses.append(status)
            item = self._status_item(number, message, status, error)
            copies = 2 if faults.duplicate_webhooks else 1
            for _ in range(copies):
                await self.emitter.post_status(number, item)

    async def report_status(self, message_id: str, status: str) -> None:
        """Send one status webhook for a message the business sent (KeyError if unknown)."""
        message = self.state.find_sent(message_id)
        if message is None:
            raise KeyError(f"no sent message {message_id}")
        number = self.state.numbers[message.channel]
        message.statuses.append(status)
        await self.emitter.post_status(number, self._status_item(number, message, status, None))

    def _status_item(
        self, number: BusinessNumber, message: SentMessage, status: str, error: ErrorFault | None
    ) -> dict[str, Any]:
        errors = None
        if status == "failed" and error is not None:
            title = _TITLES.get(error.code, "Message failed")
            errors = [error_item(error.code, title, error.message or title)]
        category = "service"
        if message.type == "template":
            key = (
                number.waba_id,
                message.body["template"]["name"],
                message.body["template"]["language"]["code"],
            )
            template = self.state.templates.get(key)
            category = template.category.lower() if template else "utility"
        return status_item(
            message.id,
            status,
            message.to,
            int(self.state.clock()),
            callback_data=message.body.get("biz_opaque_callback_data"),
            category=category,
            errors=errors,
        )

    async def customer_sends(self, phone_number_id: str, spec: dict[str, Any]) -> CustomerMessage:
        """A customer writes to a business number: open the window, post the signed webhook."""
        number = self.state.numbers[phone_number_id]
        spec = {**spec, "business_number": number.display_phone_number}
        item, media = customer_message(spec, new_wamid(), int(self.state.clock()))
        if media is not None:
            obj = item[item["type"]]
            self.state.media[obj["id"]] = (media, obj["mime_type"], phone_number_id)
        sender = item["from"]
        self.state.open_window(phone_number_id, sender)
        record = CustomerMessage(
            item["id"], "cloud", phone_number_id, sender, item["type"], item, self.state.clock()
        )
        self.state.received.append(record)
        body = inbound_body(number, item, spec.get("profile_name"))
        record.webhook_status = await self.emitter.post_meta(
            number.webhook_url, number.app_secret, body
        )
        return record

    async def business_app_sends(
        self, phone_number_id: str, to: str, spec: dict[str, Any]
    ) -> PhoneEcho:
        """Someone at the business sends from the WhatsApp Business app on the number's phone:
        Meta echoes it to the webhook (`smb_message_echoes`), media by id like a customer's."""
        number = self.state.numbers[phone_number_id]
        item, media = customer_message({**spec, "from": to}, new_wamid(), int(self.state.clock()))
        item["from"], item["to"] = number.display_phone_number, to
        if media is not None:
            obj = item[item["type"]]
            self.state.media[obj["id"]] = (media, obj["mime_type"], phone_number_id)
        echo = PhoneEcho(item["id"], phone_number_id, to, item["type"], item)
        contacts = [{"profile": {"name": spec.get("profile_name") or "Customer"}, "wa_id": to}]
        body = envelope(
            number, {"contacts": contacts, "message_echoes": [item]}, field="smb_message_echoes"
        )
        echo.webhook_status = await self.emitter.post_meta(
            number.webhook_url, number.app_secret, body
        )
        return echo

    # -- nodes, media, templates ----------------------------------------------------------

    async def get_node(self, request: web.Request) -> web.Response:
        """`GET /{id}`: a phone number's info or a media item's download URL."""
        numbers = self._token(request)
        node = request.match_info["node"]
        for number in numbers:
            if number.phone_number_id == node:
                return web.json_response(_phone_info(number, request.query.get("fields")))
        media = self.state.media.get(node)
        if media is not None and any(n.phone_number_id == media[2] for n in numbers):
            data, mime, _ = media
            self.state.media_lookups[node] = self.state.media_lookups.get(node, 0) + 1
            base = f"{request.scheme}://{request.host}"
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "url": f"{base}/lookaside/{node}",
                    "mime_type": mime,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "file_size": len(data),
                    "id": node,
                }
            )
        raise _unknown_object(node)

    async def delete_media(self, request: web.Request) -> web.Response:
        """`DELETE /{media_id}`."""
        numbers = self._token(request)
        node = request.match_info["node"]
        media = self.state.media.get(node)
        if media is None or not any(n.phone_number_id == media[2] for n in numbers):
            raise _unknown_object(node)
        del self.state.media[node]
        return web.json_response({"success": True})

    async def download_media(self, request: web.Request) -> web.Response:
        """The lookaside download URL; needs the same bearer token."""
        numbers = self._token(request)
        media = self.state.media.get(request.match_info["media_id"])
        if media is None or not any(n.phone_number_id == media[2] for n in numbers):
            return web.Response(status=404, text="Not found")
        faults = self.state.faults
        if faults.expire_media_urls > 0:
            faults.expire_media_urls -= 1
            return web.Response(status=404, text="URL signature expired")
        if faults.failing_media_downloads > 0:
            faults.failing_media_downloads -= 1
            return web.Response(status=faults.media_download_status, text="Injected failure")
        media_id = request.match_info["media_id"]
        self.state.media_downloads[media_id] = self.state.media_downloads.get(media_id, 0) + 1
        data = media[0]
        if faults.tamper_media and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return web.Response(body=data, content_type=media[1].split(";")[0])

    async def upload_media(self, request: web.Request) -> web.Response:
        """`POST /{phone_number_id}/media` (multipart: messaging_product, type, file)."""
        number = self._number(request, request.match_info["node"])
        if not request.content_type.startswith("multipart/"):
            raise GraphFault(
                100, "Invalid parameter", details="media upload must be multipart/form-data"
            )
        form = await request.post()
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not isinstance(upload, web.FileField):
            raise GraphFault(100, "The parameter file is required.")
        mime = str(form.get("type") or upload.content_type)
        media_id = new_numeric_id()
        self.state.media[media_id] = (upload.file.read(), mime, number.phone_number_id)
        return web.json_response({"id": media_id})

    def _waba(self, request: web.Request) -> str:
        waba = request.match_info["node"]
        if not any(n.waba_id == waba for n in self._token(request)):
            raise _unknown_object(waba)
        return waba

    async def create_template(self, request: web.Request) -> web.Response:
        """`POST /{waba_id}/message_templates`: PENDING now, the verdict later by webhook."""
        waba = self._waba(request)
        template = self.templates.create(waba, await _json_body(request))
        return web.json_response(
            {"id": template.id, "status": template.status, "category": template.category}
        )

    async def delete_template(self, request: web.Request) -> web.Response:
        """`DELETE /{waba_id}/message_templates?name=…[&hsm_id=…]`."""
        waba = self._waba(request)
        self.templates.delete(waba, request.query.get("name"), request.query.get("hsm_id"))
        return web.json_response({"success": True})

    async def list_templates(self, request: web.Request) -> web.Response:
        """`GET /{waba_id}/message_templates` with cursor paging."""
        waba = self._waba(request)
        items = [t.graph() for t in self.state.templates.values() if t.waba_id == waba]
        if request.query.get("status"):
            items = [t for t in items if t["status"] == request.query["status"]]
        limit = max(1, min(int(request.query.get("limit", "25") or 25), 250))
        start = int(request.query.get("after", "0") or 0)
        page = items[start : start + limit]
        paging: dict[str, Any] = {
            "cursors": {"before": str(start), "after": str(start + len(page))}
        }
        if start + limit < len(items):
            paging["next"] = str(
                request.url.update_query(after=str(start + limit), limit=str(limit))
            )
        return web.json_response({"data": page, "paging": paging})


def _unknown_object(node: str) -> GraphFault:
    return GraphFault(
        100,
        f"Unsupported post request. Object with ID '{node}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation.",
        subcode=33,
        error_type="GraphMethodException",
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise GraphFault(
            100, "Invalid parameter", details="request body is not valid JSON"
        ) from exc
    if not isinstance(body, dict):
        raise GraphFault(100, "Invalid parameter", details="request body must be a JSON object")
    return body


def _phone_info(number: BusinessNumber, fields: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "verified_name": number.verified_name,
        "display_phone_number": number.display_phone_number,
        "quality_rating": number.quality_rating,
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
        "name_status": "APPROVED",
        "status": "CONNECTED",
    }
    if fields:
        wanted = {f.strip() for f in fields.split(",")}
        info = {key: value for key, value in info.items() if key in wanted}
    info["id"] = number.phone_number_id
    return info

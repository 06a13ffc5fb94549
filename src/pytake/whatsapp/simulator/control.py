"""The simulator's control API under `/_sim/...`: set up numbers and templates, play the
customer, inspect what the business sent, inject faults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from pytake.whatsapp.simulator.meta_payloads import BadCustomerMessage
from pytake.whatsapp.simulator.state import ErrorFault

if TYPE_CHECKING:
    from pytake.whatsapp.simulator.server import Simulator

PREFIX = "/_sim"


class ControlError(ValueError):
    """A bad control request (answered 400 with `{"error": ...}`)."""


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError as exc:
        raise ControlError("body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    return body


def _ok(data: Any = None, status: int = 200) -> web.Response:
    return web.json_response({"ok": True} if data is None else data, status=status)


class ControlApi:
    """Handlers of `/_sim/...`, thin wrappers over the Simulator's in-process methods."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        """The control routes."""
        p = PREFIX
        return [
            web.post(f"{p}/reset", self.reset),
            web.get(f"{p}/numbers", self.list_numbers),
            web.post(f"{p}/numbers", self.register_number),
            web.post(f"{p}/numbers/{{pnid}}/inbound", self.cloud_inbound),
            web.post(f"{p}/numbers/{{pnid}}/verify-webhook", self.verify_webhook),
            web.post(f"{p}/windows", self.set_window),
            web.get(f"{p}/templates", self.list_templates),
            web.post(f"{p}/templates", self.register_template),
            web.post(f"{p}/templates/{{template_id}}/status", self.template_status),
            web.post(f"{p}/templates/{{template_id}}/quality", self.template_quality),
            web.post(f"{p}/templates/{{template_id}}/category", self.template_category),
            web.get(f"{p}/messages", self.list_sent),
            web.get(f"{p}/received", self.list_received),
            web.get(f"{p}/read-marks", self.list_read_marks),
            web.get(f"{p}/webhooks", self.list_webhooks),
            web.get(f"{p}/faults", self.get_faults),
            web.post(f"{p}/faults", self.set_faults),
            web.delete(f"{p}/faults", self.clear_faults),
            web.post(f"{p}/idle", self.idle),
            web.get(f"{p}/thread", self.thread),
            web.get(f"{p}/evolution/instances", self.list_instances),
            web.post(f"{p}/evolution/instances/{{name}}/scan", self.scan),
            web.post(f"{p}/evolution/instances/{{name}}/disconnect", self.disconnect),
            web.post(f"{p}/evolution/instances/{{name}}/inbound", self.evolution_inbound),
        ]

    async def reset(self, request: web.Request) -> web.Response:
        """Forget everything."""
        self.sim.reset()
        return _ok()

    async def list_numbers(self, request: web.Request) -> web.Response:
        """Registered business numbers (without secrets)."""
        return _ok([n.public() for n in self.sim.state.numbers.values()])

    async def register_number(self, request: web.Request) -> web.Response:
        """Register (or replace) a business number."""
        body = await _body(request)
        try:
            number = self.sim.register_number(**body)
        except TypeError as exc:
            raise ControlError(str(exc)) from exc
        return _ok(number.public(), status=201)

    async def cloud_inbound(self, request: web.Request) -> web.Response:
        """Make a customer send a message to a Cloud number."""
        pnid = request.match_info["pnid"]
        if pnid not in self.sim.state.numbers:
            raise web.HTTPNotFound(text=f"unknown phone_number_id {pnid}")
        record = await self.sim.customer_sends(pnid, **await _body(request))
        return _ok(record.public(), status=201)

    async def verify_webhook(self, request: web.Request) -> web.Response:
        """Run Meta's subscription GET against the number's webhook URL."""
        result = await self.sim.verify_webhook(request.match_info["pnid"])
        return _ok(result)

    async def set_window(self, request: web.Request) -> web.Response:
        """Open or close a customer's 24-hour window: {phone_number_id, wa_id, open}."""
        body = await _body(request)
        pnid, wa_id = str(body.get("phone_number_id", "")), str(body.get("wa_id", ""))
        if not pnid or not wa_id:
            raise ControlError("phone_number_id and wa_id are required")
        if body.get("open", True):
            self.sim.state.open_window(pnid, wa_id)
        else:
            self.sim.state.close_window(pnid, wa_id)
        return _ok()

    async def list_templates(self, request: web.Request) -> web.Response:
        """Registered templates."""
        return _ok([{"waba_id": t.waba_id, **t.graph()} for t in self.sim.state.templates.values()])

    async def register_template(self, request: web.Request) -> web.Response:
        """Register a template: {waba_id, name, language, status, category, components | body}."""
        body = await _body(request)
        try:
            template = self.sim.register_template(**body)
        except TypeError as exc:
            raise ControlError(str(exc)) from exc
        return _ok({"waba_id": template.waba_id, **template.graph()}, status=201)

    async def template_status(self, request: web.Request) -> web.Response:
        """Meta decides on a template: {status, reason?}; answers the webhook statuses."""
        body = await _body(request)
        if not isinstance(body.get("status"), str):
            raise ControlError("status is required (APPROVED, REJECTED, PAUSED, DISABLED...)")
        delivered = await self.sim.set_template_status(
            request.match_info["template_id"], body["status"], body.get("reason")
        )
        return _ok({"webhooks": delivered})

    async def template_quality(self, request: web.Request) -> web.Response:
        """Meta rates a template: {score: GREEN | YELLOW | RED}."""
        body = await _body(request)
        if not isinstance(body.get("score"), str):
            raise ControlError("score is required (GREEN, YELLOW, RED)")
        delivered = await self.sim.set_template_quality(
            request.match_info["template_id"], body["score"]
        )
        return _ok({"webhooks": delivered})

    async def template_category(self, request: web.Request) -> web.Response:
        """Meta recategorises a template: {category}."""
        body = await _body(request)
        if not isinstance(body.get("category"), str):
            raise ControlError("category is required (MARKETING, UTILITY, AUTHENTICATION)")
        delivered = await self.sim.set_template_category(
            request.match_info["template_id"], body["category"]
        )
        return _ok({"webhooks": delivered})

    async def list_sent(self, request: web.Request) -> web.Response:
        """Messages the business sent: ?channel=&to=&provider=."""
        query = request.query
        messages = self.sim.state.sent_messages(
            channel=query.get("channel"), to=query.get("to"), provider=query.get("provider")
        )
        return _ok([m.public() for m in messages])

    async def list_received(self, request: web.Request) -> web.Response:
        """Messages simulated customers sent: ?channel=."""
        channel = request.query.get("channel")
        items = [m.public() for m in self.sim.state.received if channel in (None, m.channel)]
        return _ok(items)

    async def list_read_marks(self, request: web.Request) -> web.Response:
        """Read receipts the business sent."""
        return _ok(self.sim.state.read_marks)

    async def list_webhooks(self, request: web.Request) -> web.Response:
        """Every webhook delivery (body, status, attempts)."""
        return _ok(self.sim.state.webhook_log)

    async def get_faults(self, request: web.Request) -> web.Response:
        """Current faults."""
        return _ok(self.sim.state.faults.public())

    async def set_faults(self, request: web.Request) -> web.Response:
        """Merge faults: {error, async_error, latency_ms, duplicate_webhooks, reorder_statuses,
        drop_statuses, window_mode, tamper_media, expire_media_urls, fail_media_downloads,
        vanish_sent_media}."""
        body = await _body(request)
        try:
            self.sim.set_faults(**body)
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return _ok(self.sim.state.faults.public())

    async def clear_faults(self, request: web.Request) -> web.Response:
        """Remove every fault."""
        self.sim.clear_faults()
        return _ok()

    async def idle(self, request: web.Request) -> web.Response:
        """Answer once every pending webhook has been delivered."""
        await self.sim.idle()
        return _ok()

    async def thread(self, request: web.Request) -> web.Response:
        """Both directions of one customer's chat with a channel, for the phone page."""
        channel, customer = request.query.get("channel", ""), request.query.get("customer", "")
        return _ok(self.sim.thread(channel, customer))

    async def list_instances(self, request: web.Request) -> web.Response:
        """Evolution instances."""
        return _ok([i.row() for i in self.sim.state.instances.values()])

    async def scan(self, request: web.Request) -> web.Response:
        """The business's phone scans the QR: {number, profile_name}."""
        body = await _body(request)
        instance = self.sim.scan(
            request.match_info["name"],
            str(body.get("number") or "5511900000000"),
            body.get("profile_name"),
        )
        return _ok(instance.row())

    async def disconnect(self, request: web.Request) -> web.Response:
        """The phone drops: state close with {status_reason}."""
        body = await _body(request)
        name = request.match_info["name"]
        if name not in self.sim.state.instances:
            raise web.HTTPNotFound(text=f"unknown instance {name}")
        self.sim.evolution.set_state(
            self.sim.state.instances[name], "close", int(body.get("status_reason", 428))
        )
        return _ok()

    async def evolution_inbound(self, request: web.Request) -> web.Response:
        """Make a customer send a message to an Evolution instance."""
        name = request.match_info["name"]
        if name not in self.sim.state.instances:
            raise web.HTTPNotFound(text=f"unknown instance {name}")
        record = await self.sim.evolution_customer_sends(name, **await _body(request))
        return _ok(record.public(), status=201)


def error_fault(raw: Any) -> ErrorFault:
    """An ErrorFault from its control-API form {code, http_status, message, count, ...}."""
    if not isinstance(raw, dict) or not isinstance(raw.get("code"), int):
        raise ControlError("a fault needs an integer code")
    return ErrorFault(
        code=raw["code"],
        http_status=int(raw.get("http_status", 400)),
        message=raw.get("message"),
        remaining=int(raw.get("count", 1)),
        provider=raw.get("provider", "any"),
        channel=raw.get("channel"),
    )


@web.middleware
async def control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn bad control requests into 400s naming the problem."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except (ControlError, BadCustomerMessage, KeyError) as exc:
        if not request.path.startswith(PREFIX):
            raise
        return web.json_response({"error": str(exc)}, status=400)

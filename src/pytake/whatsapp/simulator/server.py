"""The Simulator: one aiohttp app serving the fake Graph API, the fake Evolution API, the
control API and the customer's phone page. Start it in-process for tests, or with `run()`."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from importlib import resources
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from pytake.whatsapp.simulator.control import ControlApi, control_errors, error_fault
from pytake.whatsapp.simulator.emitter import WebhookEmitter
from pytake.whatsapp.simulator.evolution_api import EvolutionApi, EvolutionFault
from pytake.whatsapp.simulator.graph import GraphApi, graph_fault_response
from pytake.whatsapp.simulator.graph_validation import GraphFault
from pytake.whatsapp.simulator.state import (
    BusinessNumber,
    CustomerMessage,
    EvolutionInstance,
    PhoneEcho,
    SimState,
    SimTemplate,
    SimulatorSettings,
)

GRAPH_VERSION = "v23.0"
STATE_KEY = web.AppKey("state", SimState)


@web.middleware
async def provider_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Injected latency, and Graph / Evolution errors rendered in their own shapes."""
    state = request.app[STATE_KEY]
    if state.faults.latency_ms and not request.path.startswith("/_sim"):
        await asyncio.sleep(state.faults.latency_ms / 1000)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except GraphFault as fault:
        return graph_fault_response(fault)
    except EvolutionFault as fault:
        return fault.response()


class Simulator:
    """A fake Graph API + Evolution API server with a control API, runnable in-process."""

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        clock: Callable[[], float] | None = None,
        faults: dict[str, Any] | None = None,
    ) -> None:
        self.state = SimState(
            settings or SimulatorSettings(), **({"clock": clock} if clock else {})
        )
        self.emitter = WebhookEmitter(self.state)
        self.graph = GraphApi(self.state, self.emitter)
        self.evolution = EvolutionApi(self.state, self.emitter)
        self.control = ControlApi(self)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        # Faults given at construction are the baseline that `reset()` restores.
        self._initial_faults = dict(faults or {})
        self.set_faults(**self._initial_faults)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (port 0 = any free port); returns the base URL."""
        await self.emitter.start()
        self._runner = web.AppRunner(build_app(self), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        self.evolution.server_url = self.base_url
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and cancel pending webhook deliveries."""
        await self.emitter.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def graph_url(self) -> str:
        """Base URL for the Cloud adapter (includes the version segment)."""
        return f"{self.base_url}/{GRAPH_VERSION}"

    @property
    def evolution_url(self) -> str:
        """Base URL for the Evolution adapter."""
        return self.base_url

    async def idle(self) -> None:
        """Wait until every pending webhook (statuses, retries) has been delivered."""
        await self.emitter.idle()

    def reset(self) -> None:
        """Forget numbers, templates, messages, instances, and faults set after construction."""
        self.state.reset()
        self.set_faults(**self._initial_faults)

    # -- Cloud side -----------------------------------------------------------------------

    def register_number(
        self,
        phone_number_id: str,
        access_token: str,
        app_secret: str,
        *,
        display_phone_number: str | None = None,
        waba_id: str | None = None,
        webhook_url: str | None = None,
        verified_name: str = "Simulated Business",
        verify_token: str | None = None,
        quality_rating: str = "GREEN",
        mps: int | None = None,
    ) -> BusinessNumber:
        """Register (or replace) a Cloud API business number."""
        number = BusinessNumber(
            phone_number_id=str(phone_number_id),
            display_phone_number=display_phone_number or str(phone_number_id),
            access_token=access_token,
            app_secret=app_secret,
            waba_id=str(waba_id or f"waba-{phone_number_id}"),
            webhook_url=webhook_url,
            verified_name=verified_name,
            verify_token=verify_token,
            quality_rating=quality_rating,
            mps=mps,
        )
        self.state.numbers[number.phone_number_id] = number
        return number

    def register_template(
        self,
        waba_id: str,
        name: str,
        language: str = "en_US",
        *,
        components: list[dict[str, Any]] | None = None,
        body: str | None = None,
        header: str | None = None,
        status: str = "APPROVED",
        category: str = "UTILITY",
        parameter_format: str = "POSITIONAL",
    ) -> SimTemplate:
        """Register a template; `body`/`header` texts are shorthand for components."""
        if components is None:
            components = [{"type": "HEADER", "format": "TEXT", "text": header}] if header else []
            components.append({"type": "BODY", "text": body or ""})
        template = SimTemplate(
            str(waba_id), name, language, components, status, category, parameter_format
        )
        self.state.templates[(template.waba_id, name, language)] = template
        return template

    async def set_template_status(
        self, template_id: str, status: str, reason: str | None = None
    ) -> list[int | None]:
        """Meta changes a template's status (APPROVED, REJECTED, PAUSED, DISABLED…); the
        signed `message_template_status_update` is delivered before return."""
        registry = self.graph.templates
        return await registry.set_status(registry.find(template_id), status, reason)

    async def set_template_quality(self, template_id: str, score: str) -> list[int | None]:
        """Meta rates a template GREEN / YELLOW / RED (`message_template_quality_update`)."""
        registry = self.graph.templates
        return await registry.set_quality(registry.find(template_id), score)

    async def set_template_category(self, template_id: str, category: str) -> list[int | None]:
        """Meta recategorises a template (`template_category_update`)."""
        registry = self.graph.templates
        return await registry.set_category(registry.find(template_id), category)

    async def customer_sends(
        self, phone_number_id: str, sender: str | None = None, **spec: Any
    ) -> CustomerMessage:
        """A customer messages a Cloud number; the signed webhook is delivered before return.

        `spec` is `type` plus its fields: text; button_reply/list_reply (reply_id, title);
        button (payload, text); image/video/audio/document/sticker (caption, filename,
        mime_type, data_base64); location; contacts; reaction (message_id, emoji);
        order (catalog_id, text, product_items); system (new_wa_id); unsupported.
        Also profile_name, context_message_id, referral.
        """
        if sender is not None:
            spec["from"] = sender
        return await self.graph.customer_sends(phone_number_id, spec)

    async def business_app_sends(self, phone_number_id: str, to: str, **spec: Any) -> PhoneEcho:
        """The business writes to `to` from the WhatsApp Business app on the number's phone
        (a coexistence number); the signed `smb_message_echoes` webhook is delivered before
        return. `spec` as for `customer_sends`."""
        return await self.graph.business_app_sends(phone_number_id, to, spec)

    async def customer_reads(self, message_id: str) -> None:
        """The customer opens a message the business sent (with `auto_read` off, nothing else
        reads it): its signed `read` status webhook is delivered before return."""
        await self.graph.report_status(message_id, "read")

    async def verify_webhook(self, phone_number_id: str) -> dict[str, Any]:
        """Run Meta's `hub.challenge` GET against the number's webhook URL."""
        number = self.state.numbers[phone_number_id]
        challenge = secrets.token_hex(8)
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": number.verify_token or "",
            "hub.challenge": challenge,
        }
        if not number.webhook_url:
            return {"verified": False, "status": None, "reason": "no webhook_url"}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(number.webhook_url, params=params) as response:
                    text = await response.text()
                    status = response.status
            except aiohttp.ClientError as exc:
                return {"verified": False, "status": None, "reason": repr(exc)}
        return {"verified": status == 200 and text == challenge, "status": status, "body": text}

    # -- Evolution side -------------------------------------------------------------------

    def scan(
        self, instance: str, number: str, profile_name: str | None = None
    ) -> EvolutionInstance:
        """The business's phone scans the instance's QR; it becomes `open`."""
        return self.evolution.scan(instance, number, profile_name)

    async def evolution_customer_sends(
        self, instance: str, sender: str | None = None, **spec: Any
    ) -> CustomerMessage:
        """A customer messages an Evolution instance (spec as `customer_sends`, plus
        `lid` for LID addressing and `text_shape="extended"` for the older text shape)."""
        if sender is not None:
            spec["from"] = sender
        return await self.evolution.customer_sends(instance, spec)

    async def evolution_business_sends(self, instance: str, to: str, **spec: Any) -> PhoneEcho:
        """The business's own phone (the instance's WhatsApp) sends to `to`: echoed to the
        webhook as `messages.upsert` with `key.fromMe` (spec as `customer_sends`)."""
        return await self.evolution.business_phone_sends(instance, to, spec)

    # -- faults and inspection ------------------------------------------------------------

    def set_faults(
        self,
        *,
        error: dict[str, Any] | None = None,
        async_error: dict[str, Any] | None = None,
        latency_ms: int | None = None,
        duplicate_webhooks: bool | None = None,
        reorder_statuses: bool | None = None,
        drop_statuses: list[str] | None = None,
        window_mode: str | None = None,
        tamper_media: bool | None = None,
        expire_media_urls: int | None = None,
        fail_media_downloads: dict[str, Any] | None = None,
        vanish_sent_media: int | None = None,
    ) -> None:
        """Merge faults; `error` fails the next `count` sends synchronously, `async_error`
        accepts them and reports `failed` by webhook, `fail_media_downloads` answers the next
        `count` media downloads with `status`, `vanish_sent_media` accepts the next N sends by
        media id and then loses the id (`failed` 131053 by webhook)."""
        faults = self.state.faults
        if error is not None:
            faults.errors.append(error_fault(error))
        if async_error is not None:
            faults.async_errors.append(error_fault(async_error))
        if latency_ms is not None:
            faults.latency_ms = int(latency_ms)
        if duplicate_webhooks is not None:
            faults.duplicate_webhooks = bool(duplicate_webhooks)
        if reorder_statuses is not None:
            faults.reorder_statuses = bool(reorder_statuses)
        if drop_statuses is not None:
            faults.drop_statuses = set(drop_statuses)
        if tamper_media is not None:
            faults.tamper_media = bool(tamper_media)
        if expire_media_urls is not None:
            faults.expire_media_urls = int(expire_media_urls)
        if fail_media_downloads is not None:
            # {"count": N, "status": 503}: the next N downloads answer that status.
            faults.failing_media_downloads = int(fail_media_downloads.get("count", 1))
            faults.media_download_status = int(fail_media_downloads.get("status", 503))
        if vanish_sent_media is not None:
            faults.vanish_sent_media = int(vanish_sent_media)
        if window_mode is not None:
            if window_mode not in ("sync", "async"):
                raise ValueError("window_mode must be sync or async")
            faults.window_mode = window_mode  # type: ignore[assignment]  # checked just above

    def clear_faults(self) -> None:
        """Remove every fault (including those given at construction)."""
        self.state.faults = type(self.state.faults)()

    def thread(self, channel: str, customer: str) -> list[dict[str, Any]]:
        """One customer's chat with a channel, both directions, oldest first."""
        number = self.state.numbers.get(channel)
        items: list[dict[str, Any]] = [
            {
                "direction": "out",
                "id": m.id,
                "type": m.type,
                "body": m.body,
                "statuses": m.statuses,
                "at": m.created_at,
                "provider": m.provider,
                **(
                    {"rendered": self.graph.templates.render(number.waba_id, m.body)}
                    if number is not None and m.type == "template"
                    else {}
                ),
            }
            for m in self.state.sent
            if m.channel == channel and m.to == customer
        ]
        items += [
            {
                "direction": "in",
                "id": m.id,
                "type": m.type,
                "body": m.item,
                "at": m.created_at,
                "provider": m.provider,
            }
            for m in self.state.received
            if m.channel == channel and m.sender == customer
        ]
        return sorted(items, key=lambda item: item["at"])


async def _index(request: web.Request) -> web.Response:
    page = resources.files("pytake.whatsapp.simulator").joinpath("static/index.html")
    return web.Response(text=page.read_text(encoding="utf-8"), content_type="text/html")


def build_app(sim: Simulator) -> web.Application:
    """The aiohttp application serving everything the simulator offers."""
    app = web.Application(
        middlewares=[provider_errors, control_errors], client_max_size=120 * 1024**2
    )
    app[STATE_KEY] = sim.state
    app.router.add_get("/", _index)
    app.add_routes(sim.control.routes())
    app.add_routes(sim.graph.routes())
    app.add_routes(sim.evolution.routes())
    return app


def run(
    host: str = "127.0.0.1",
    port: int = 9090,
    settings: SimulatorSettings | None = None,
) -> None:
    """Serve the simulator until interrupted (the `pytake simulator` command)."""

    async def main() -> None:
        sim = Simulator(settings)
        url = await sim.start(host, port)
        print(
            f"WhatsApp simulator on {url}  (Graph: {sim.graph_url}, control: {url}/_sim)",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())

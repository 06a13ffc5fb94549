"""Evolution API v2 adapter: instance management and the WhatsAppProvider port."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp

from pytake.whatsapp._json import obj as as_obj
from pytake.whatsapp.evolution.translate import jid, to_evolution
from pytake.whatsapp.provider import (
    MediaContent,
    MediaUrl,
    OutboundMessage,
    PhoneNumberInfo,
    ProviderError,
    SendResult,
    Template,
)

BAILEYS = "WHATSAPP-BAILEYS"
BUSINESS = "WHATSAPP-BUSINESS"
DEFAULT_EVENTS = (
    "MESSAGES_UPSERT",
    "MESSAGES_UPDATE",
    "CONNECTION_UPDATE",
    "QRCODE_UPDATED",
    "SEND_MESSAGE",
)


@dataclass(frozen=True, slots=True)
class QrCode:
    """A QR code to scan (and/or a pairing code) for an instance."""

    code: str | None
    base64: str | None
    pairing_code: str | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where Evolution posts events for an instance, with the headers it adds."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: tuple[str, ...] = DEFAULT_EVENTS
    by_events: bool = False
    base64: bool = False
    enabled: bool = True

    def body(self) -> dict[str, Any]:
        """The nested v2 `webhook` object."""
        return {
            "enabled": self.enabled,
            "url": self.url,
            "headers": self.headers,
            "byEvents": self.by_events,
            "base64": self.base64,
            "events": list(self.events),
        }


@dataclass(frozen=True, slots=True)
class InstanceCreated:
    """Result of `/instance/create`."""

    name: str
    instance_id: str | None
    integration: str | None
    status: str | None
    token: str | None  # the instance's own API key ("hash")
    qrcode: QrCode | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """Result of `/instance/connect`: a QR code to scan, or the state when already open."""

    state: str | None
    qrcode: QrCode | None
    raw: dict[str, Any]


def _qr(data: Any) -> QrCode | None:
    if not isinstance(data, dict) or not (data.get("code") or data.get("base64")):
        return None
    return QrCode(
        code=data.get("code"),
        base64=data.get("base64"),
        pairing_code=data.get("pairingCode"),
        count=data.get("count"),
    )


class EvolutionClient:
    """Calls an Evolution API v2 server with its global (or an instance) `apikey`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"apikey": api_key}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def create_instance(
        self,
        name: str,
        *,
        integration: str = BAILEYS,
        token: str | None = None,
        qrcode: bool = True,
        number: str | None = None,
        business_id: str | None = None,
        webhook: WebhookConfig | None = None,
        settings: dict[str, Any] | None = None,
    ) -> InstanceCreated:
        """`POST /instance/create`; for WHATSAPP-BUSINESS, number = Meta phone_number_id."""
        body: dict[str, Any] = {"instanceName": name, "integration": integration, "qrcode": qrcode}
        optional = {"token": token, "number": number, "businessId": business_id}
        body.update({key: val for key, val in optional.items() if val is not None})
        if webhook is not None:
            body["webhook"] = webhook.body()
        body.update(settings or {})
        data = await self.request("POST", "/instance/create", json=body)
        instance = as_obj(data.get("instance"))
        token_value = data.get("hash")
        if isinstance(token_value, dict):  # older servers: {"apikey": ...}
            token_value = token_value.get("apikey")
        return InstanceCreated(
            name=str(instance.get("instanceName") or name),
            instance_id=instance.get("instanceId"),
            integration=instance.get("integration"),
            status=instance.get("status"),
            token=token_value,
            qrcode=_qr(data.get("qrcode")),
            raw=data,
        )

    async def connect(self, name: str, *, number: str | None = None) -> ConnectResult:
        """`GET /instance/connect/{name}`: a QR (and pairing code when `number` is given)."""
        params = {"number": number} if number else None
        data = await self.request("GET", f"/instance/connect/{name}", params=params)
        _raise_on_body_error(data, "connect")
        instance = data.get("instance")
        state = instance.get("state") if isinstance(instance, dict) else None
        return ConnectResult(state=state, qrcode=_qr(data), raw=data)

    async def restart(self, name: str) -> ConnectResult:
        """`POST /instance/restart/{name}`."""
        data = await self.request("POST", f"/instance/restart/{name}")
        _raise_on_body_error(data, "restart")
        instance = data.get("instance")
        state = instance.get("state") if isinstance(instance, dict) else None
        return ConnectResult(state=state, qrcode=_qr(data), raw=data)

    async def connection_state(self, name: str) -> str:
        """`open`, `close` or `connecting`."""
        data = await self.request("GET", f"/instance/connectionState/{name}")
        instance = data.get("instance")
        if not isinstance(instance, dict) or not instance.get("state"):
            raise ProviderError("connectionState without state", kind="invalid_response", raw=data)
        return str(instance["state"])

    async def logout(self, name: str) -> None:
        """`DELETE /instance/logout/{name}` (fails with 400 when already closed)."""
        await self.request("DELETE", f"/instance/logout/{name}")

    async def delete_instance(self, name: str) -> None:
        """`DELETE /instance/delete/{name}` (logs out first if connected)."""
        await self.request("DELETE", f"/instance/delete/{name}")

    async def fetch_instances(self, name: str | None = None) -> list[dict[str, Any]]:
        """`GET /instance/fetchInstances`, optionally for one instance name."""
        params = {"instanceName": name} if name else None
        data = await self.request_any("GET", "/instance/fetchInstances", params=params)
        return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []

    async def set_webhook(
        self,
        instance: str,
        url: str,
        headers: dict[str, str] | None = None,
        events: Iterable[str] = DEFAULT_EVENTS,
        *,
        by_events: bool = False,
        base64: bool = False,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """`POST /webhook/set/{instance}` with the nested v2 body (the flat one fails on 2.3)."""
        config = WebhookConfig(url, dict(headers or {}), tuple(events), by_events, base64, enabled)
        return await self.request(
            "POST", f"/webhook/set/{instance}", json={"webhook": config.body()}
        )

    async def find_webhook(self, instance: str) -> dict[str, Any]:
        """`GET /webhook/find/{instance}`."""
        return await self.request("GET", f"/webhook/find/{instance}")

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Call Evolution and return its JSON object (errors raise ProviderError)."""
        data = await self.request_any(method, path, **kwargs)
        if not isinstance(data, dict):
            raise ProviderError("Evolution answered with a non-object", kind="invalid_response")
        return data

    async def request_any(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call Evolution and return its JSON, whatever its shape."""
        url = self._base + path
        try:
            async with self._session.request(
                method, url, headers=self._headers, timeout=self._timeout, **kwargs
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError.transport(exc, f"{method} {path}") from exc
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = text
        if status >= 400:
            raise evolution_error(data, status)
        return data


def _raise_on_body_error(data: dict[str, Any], operation: str) -> None:
    # connect/restart catch their own failures and answer 200 {"error": true, "message": ...}.
    if data.get("error") is True:
        raise ProviderError(
            f"Evolution {operation} failed: {data.get('message')}",
            details=str(data.get("message")),
            http_status=200,
            retryable=False,
            raw=data,
        )


def evolution_error(data: Any, status: int) -> ProviderError:
    """Map an Evolution error body `{"status","error","response":{"message"}}` to ProviderError."""
    response = data.get("response") if isinstance(data, dict) else None
    messages = response.get("message") if isinstance(response, dict) else data
    items = messages if isinstance(messages, list) else [messages]
    # "Number not on WhatsApp" is Meta's 131026 in Evolution's words.
    if any(isinstance(i, dict) and i.get("exists") is False for i in items):
        return ProviderError(
            "the number is not on WhatsApp",
            code=131026,
            details=json.dumps(items),
            http_status=status,
            raw=data,
        )
    text = "; ".join(i if isinstance(i, str) else json.dumps(i) for i in items if i is not None)
    return ProviderError(
        f"Evolution HTTP {status}: {text or 'error'}",
        details=text or None,
        http_status=status,
        raw=data,
    )


class EvolutionProvider:
    """One Evolution instance behind the WhatsAppProvider port.

    `numbered_text_interactive` (default: on for Baileys) renders buttons and lists as numbered
    text, because Baileys accepts them but phones mostly never show them.
    """

    name = "evolution"

    def __init__(
        self,
        client: EvolutionClient,
        instance: str,
        *,
        integration: str = BAILEYS,
        numbered_text_interactive: bool | None = None,
    ) -> None:
        self.client = client
        self.instance = instance
        self.integration = integration
        self.numbered_text_interactive = (
            integration == BAILEYS
            if numbered_text_interactive is None
            else numbered_text_interactive
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send through the matching `/message/send*` endpoint."""
        if message.type == "template" and self.integration != BUSINESS:
            raise ProviderError.not_supported(f"Evolution {self.integration}", "templates")
        action, body = to_evolution(message, numbered_text=self.numbered_text_interactive)
        data = await self.client.request("POST", f"/message/{action}/{self.instance}", json=body)
        key = data.get("key")
        if not isinstance(key, dict) or not key.get("id"):
            raise ProviderError("send response has no key.id", kind="invalid_response", raw=data)
        remote = str(key.get("remoteJid") or "")
        return SendResult(
            provider_message_id=str(key["id"]),
            raw=data,
            wa_id=remote.split("@")[0] or None,
            message_status=data.get("status"),
        )

    async def mark_read(self, provider_message_id: str, *, sender: str | None = None) -> None:
        """`/chat/markMessageAsRead`; Evolution needs the customer's number as `sender`."""
        if not sender:
            raise ProviderError(
                "Evolution needs the sender's number to mark a message read",
                kind="not_supported",
                retryable=False,
            )
        item = {"remoteJid": jid(sender), "fromMe": False, "id": provider_message_id}
        await self.client.request(
            "POST", f"/chat/markMessageAsRead/{self.instance}", json={"readMessages": [item]}
        )

    async def get_media_url(self, media_id: str) -> MediaUrl:
        """Evolution has no media URLs; use download_media."""
        raise ProviderError.not_supported("Evolution", "media URLs")

    async def download_media(self, media_id: str) -> MediaContent:
        """Fetch a received message's media via `/chat/getBase64FromMediaMessage` (id = key.id)."""
        data = await self.client.request(
            "POST",
            f"/chat/getBase64FromMediaMessage/{self.instance}",
            json={"message": {"key": {"id": media_id}}},
        )
        try:
            payload = base64.b64decode(str(data.get("base64") or ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProviderError("media is not valid base64", kind="invalid_response") from exc
        mime = str(data.get("mimetype") or "application/octet-stream")
        return MediaContent(data=payload, mime_type=mime, filename=data.get("fileName"))

    async def upload_media(self, data: bytes | IO[bytes], mime_type: str, filename: str) -> str:
        """Evolution sends media by URL or base64; there is no upload step."""
        raise ProviderError.not_supported("Evolution", "media upload")

    async def phone_number_info(self) -> PhoneNumberInfo:
        """Instance state and owner number (the "test connection" answer)."""
        state = await self.client.connection_state(self.instance)
        rows = await self.client.fetch_instances(self.instance)
        row = next((r for r in rows if r.get("name") == self.instance), rows[0] if rows else {})
        owner = str(row.get("ownerJid") or "").split("@")[0].split(":")[0]
        return PhoneNumberInfo(
            id=self.instance,
            display_phone_number=owner or row.get("number"),
            verified_name=row.get("profileName"),
            status=state,
            platform_type=str(row.get("integration") or self.integration),
            raw=row,
        )

    async def list_templates(self) -> list[Template]:
        """Templates are managed at Meta, not through Evolution."""
        raise ProviderError.not_supported("Evolution", "listing templates")

    async def create_template(self, template: dict[str, Any]) -> Template:
        """Templates are managed at Meta, not through Evolution."""
        raise ProviderError.not_supported("Evolution", "creating templates")

    async def delete_template(self, name: str, template_id: str | None = None) -> None:
        """Templates are managed at Meta, not through Evolution."""
        raise ProviderError.not_supported("Evolution", "deleting templates")

"""Meta WhatsApp Cloud API adapter (Graph API over an injected aiohttp session)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from pytake.whatsapp._json import obj as as_obj
from pytake.whatsapp.provider import (
    MediaContent,
    MediaUrl,
    OutboundMessage,
    PhoneNumberInfo,
    ProviderError,
    SendResult,
    Template,
    normalize_recipient,
)

PHONE_FIELDS = (
    "verified_name,display_phone_number,quality_rating,code_verification_status,"
    "platform_type,throughput,name_status,status"
)
TEMPLATE_FIELDS = "name,status,category,language,components,parameter_format"
_MAX_TEMPLATE_PAGES = 200  # a guard against a paging.next that never ends


def build_send_payload(message: OutboundMessage) -> dict[str, Any]:
    """The exact Graph API body for `POST /{phone_number_id}/messages`."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": normalize_recipient(message.to),
        "type": message.type,
    }
    if message.type == "contacts":
        # The Cloud object for contacts is a list; our content wraps it in {"contacts": [...]}.
        payload["contacts"] = message.content.get("contacts", [])
    else:
        payload[message.type] = message.content
    if message.context_message_id:
        payload["context"] = {"message_id": message.context_message_id}
    if message.callback_data is not None:
        payload["biz_opaque_callback_data"] = message.callback_data
    return payload


class CloudProvider:
    """One Cloud API phone number; `base_url` includes the version, e.g. `.../v23.0`."""

    name = "cloud"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        access_token: str,
        phone_number_id: str,
        waba_id: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {access_token}"}
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # Sending is the hot path (one request per message, 1,000/s per number): the URL is
        # parsed and the headers built once per number, not per message. The headers aiohttp
        # would otherwise add to every request are given here, so it only checks they exist.
        self._messages_url = URL(f"{self._base}/{phone_number_id}/messages")
        self._send_headers = CIMultiDict(
            {
                "Authorization": f"Bearer {access_token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
                "User-Agent": "PyTake",
            }
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message through `POST /{phone_number_id}/messages`."""
        body = await self._post_message(orjson.dumps(build_send_payload(message)))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not messages[0].get("id"):
            raise ProviderError(
                "send response has no message id", kind="invalid_response", raw=body
            )
        contacts = body.get("contacts") if isinstance(body.get("contacts"), list) else []
        return SendResult(
            provider_message_id=str(messages[0]["id"]),
            raw=body,
            wa_id=contacts[0].get("wa_id") if contacts else None,
            message_status=messages[0].get("message_status"),
        )

    async def mark_read(
        self, provider_message_id: str, *, sender: str | None = None, typing: bool = False
    ) -> None:
        """Mark a received message read (optionally showing the typing indicator)."""
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": provider_message_id,
        }
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        await self._call("POST", f"/{self.phone_number_id}/messages", json=payload)

    async def get_media_url(self, media_id: str) -> MediaUrl:
        """Resolve a media id to its short-lived download URL."""
        body = await self._call(
            "GET", f"/{media_id}", params={"phone_number_id": self.phone_number_id}
        )
        if not body.get("url"):
            raise ProviderError("media response has no url", kind="invalid_response", raw=body)
        size = body.get("file_size")
        return MediaUrl(
            url=str(body["url"]),
            mime_type=body.get("mime_type"),
            sha256=body.get("sha256"),
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
            media_id=body.get("id"),
        )

    async def download_media(self, media_id: str) -> MediaContent:
        """Fetch media bytes (the download URL also needs the bearer token)."""
        info = await self.get_media_url(media_id)
        try:
            async with self._session.get(
                info.url, headers=self._auth, timeout=self._timeout
            ) as response:
                if response.status >= 400:
                    raise await _error_from(response)
                data = await response.read()
                mime = info.mime_type or response.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError.transport(exc, "media download") from exc
        return MediaContent(data=data, mime_type=mime)

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """Upload bytes as multipart; returns the new media id."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, filename=filename, content_type=mime_type)
        body = await self._call("POST", f"/{self.phone_number_id}/media", data=form)
        if not body.get("id"):
            raise ProviderError("upload response has no id", kind="invalid_response", raw=body)
        return str(body["id"])

    async def phone_number_info(self) -> PhoneNumberInfo:
        """`GET /{phone_number_id}?fields=...`: proves the token and id are valid."""
        body = await self._call("GET", f"/{self.phone_number_id}", params={"fields": PHONE_FIELDS})
        throughput = body.get("throughput")
        return PhoneNumberInfo(
            id=str(body.get("id") or self.phone_number_id),
            display_phone_number=body.get("display_phone_number"),
            verified_name=body.get("verified_name"),
            quality_rating=body.get("quality_rating"),
            status=body.get("status"),
            code_verification_status=body.get("code_verification_status"),
            platform_type=body.get("platform_type"),
            throughput_level=throughput.get("level") if isinstance(throughput, dict) else None,
            name_status=body.get("name_status"),
            raw=body,
        )

    async def list_templates(self) -> list[Template]:
        """Every template of the WABA, following `paging.next`."""
        if not self.waba_id:
            raise ProviderError(
                "listing templates needs the WhatsApp Business Account id",
                code=100,
                details="waba_id is not configured for this number",
            )
        url: str | None = f"{self._base}/{self.waba_id}/message_templates"
        params: dict[str, str] | None = {"fields": TEMPLATE_FIELDS, "limit": "100"}
        templates: list[Template] = []
        for _ in range(_MAX_TEMPLATE_PAGES):
            if url is None:
                break
            body = await self._call_url("GET", url, params=params)
            templates.extend(_template(item) for item in body.get("data") or [])
            paging = as_obj(body.get("paging"))
            # `next` is a complete URL carrying every query parameter already.
            url, params = paging.get("next"), None
        return templates

    async def _post_message(self, payload: bytes) -> dict[str, Any]:
        # `_call_url` for the send path: a ready body and headers, and orjson on the answer.
        try:
            async with self._session.post(
                self._messages_url,
                data=payload,
                headers=self._send_headers,
                timeout=self._timeout,
            ) as response:
                if response.status >= 400:
                    raise await _error_from(response)
                body = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError.transport(exc, f"POST {self._messages_url}") from exc
        except orjson.JSONDecodeError as exc:
            raise ProviderError(
                "provider answered with invalid JSON", kind="invalid_response"
            ) from exc
        if not isinstance(body, dict):
            raise ProviderError("provider answered with a non-object", kind="invalid_response")
        return body

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self._call_url(method, self._base + path, **kwargs)

    async def _call_url(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self._session.request(
                method, url, headers=self._auth, timeout=self._timeout, **kwargs
            ) as response:
                if response.status >= 400:
                    raise await _error_from(response)
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError.transport(exc, f"{method} {url}") from exc
        except ValueError as exc:
            raise ProviderError(
                "provider answered with invalid JSON", kind="invalid_response"
            ) from exc
        if not isinstance(body, dict):
            raise ProviderError("provider answered with a non-object", kind="invalid_response")
        return body


async def _error_from(response: aiohttp.ClientResponse) -> ProviderError:
    text = await response.text()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return ProviderError.from_graph(body, response.status)


def _template(item: dict[str, Any]) -> Template:
    components = item.get("components")
    return Template(
        id=str(item.get("id") or ""),
        name=str(item.get("name") or ""),
        language=str(item.get("language") or ""),
        status=str(item.get("status") or ""),
        category=item.get("category"),
        components=components if isinstance(components, list) else [],
        parameter_format=item.get("parameter_format"),
        raw=item,
    )

"""Meta WhatsApp Cloud API adapter (Graph API over an injected aiohttp session)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import IO, Any

import aiohttp
import httptools
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
        pool = getattr(session.connector, "graph_pool", None)
        self._graph: GraphPool | None = pool if isinstance(pool, GraphPool) else None
        self._send_head = _request_head(self._messages_url, access_token)

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

    async def iter_media(
        self, url: str, *, chunk_size: int = 64 * 1024, seconds: float | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a download URL's bytes (it needs the bearer token too) chunk by chunk, so a
        large file never sits in memory whole; an HTTP error is a ProviderError with its status
        (401/404: the URL expired, ask `get_media_url` for a fresh one)."""
        limit = aiohttp.ClientTimeout(total=seconds) if seconds else self._timeout
        try:
            async with self._session.get(url, headers=self._auth, timeout=limit) as response:
                if response.status >= 400:
                    raise await _error_from(response)
                async for chunk in response.content.iter_chunked(chunk_size):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError.transport(exc, "media download") from exc

    async def upload_media(self, data: bytes | IO[bytes], mime_type: str, filename: str) -> str:
        """Upload bytes (or an open file, streamed) as multipart; returns the new media id."""
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

    def _waba(self, operation: str) -> str:
        if not self.waba_id:
            raise ProviderError(
                f"{operation} needs the WhatsApp Business Account id",
                code=100,
                details="waba_id is not configured for this number",
            )
        return self.waba_id

    async def list_templates(self) -> list[Template]:
        """Every template of the WABA, following `paging.next`."""
        url: str | None = f"{self._base}/{self._waba('listing templates')}/message_templates"
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

    async def create_template(self, template: dict[str, Any]) -> Template:
        """`POST /{waba_id}/message_templates`; Meta answers the new template's id and status."""
        waba = self._waba("creating templates")
        body = await self._call("POST", f"/{waba}/message_templates", json=template)
        if not body.get("id"):
            raise ProviderError(
                "template creation answer has no id", kind="invalid_response", raw=body
            )
        components = template.get("components")
        return Template(
            id=str(body["id"]),
            name=str(template.get("name") or ""),
            language=str(template.get("language") or ""),
            status=str(body.get("status") or "PENDING"),
            category=body.get("category") or template.get("category"),
            components=components if isinstance(components, list) else [],
            parameter_format=template.get("parameter_format"),
            raw=body,
        )

    async def delete_template(self, name: str, template_id: str | None = None) -> None:
        """`DELETE /{waba_id}/message_templates?name=…[&hsm_id=…]` (one language when the id
        is given, every language of the name otherwise)."""
        params = {"name": name}
        if template_id:
            params["hsm_id"] = template_id
        waba = self._waba("deleting templates")
        await self._call("DELETE", f"/{waba}/message_templates", params=params)

    async def _post_message(self, payload: bytes) -> dict[str, Any]:
        if self._graph is not None:
            return await self._post_lean(payload)
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
                answer = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError.transport(exc, f"POST {self._messages_url}") from exc
        return _json_object(answer)

    async def _post_lean(self, payload: bytes) -> dict[str, Any]:
        assert self._graph is not None
        head = self._send_head + str(len(payload)).encode() + b"\r\n\r\n"
        try:
            status, answer = await self._graph.post(
                self._messages_url, head + payload, self._timeout.total
            )
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            raise ProviderError.transport(exc, f"POST {self._messages_url}") from exc
        if status >= 400:
            raise _error_from_text(answer.decode("utf-8", "replace"), status)
        return _json_object(answer)

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
    return _error_from_text(await response.text(), response.status)


def _json_object(answer: bytes) -> dict[str, Any]:
    """A successful send's answer: a JSON object, else an invalid_response error."""
    try:
        body = orjson.loads(answer)
    except orjson.JSONDecodeError as exc:
        raise ProviderError("provider answered with invalid JSON", kind="invalid_response") from exc
    if not isinstance(body, dict):
        raise ProviderError("provider answered with a non-object", kind="invalid_response")
    return body


def _error_from_text(text: str, status: int) -> ProviderError:
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return ProviderError.from_graph(body, status)


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


# ---------------------------------------------------------------- the send path's HTTP client
#
# aiohttp costs about 0.28 ms of CPU per request on the dispatcher's hot path (request and
# response objects, a task per body write, header multidicts), more than half of a message's
# budget. Sending is one endpoint with a fixed head, so the worker's provider session carries
# a pool of plain keep-alive HTTP/1.1 connections for it: the request goes out in one write,
# the answer is parsed by llhttp (httptools). Every other call still goes through aiohttp.


class ProviderUnreachable(ConnectionError):
    """No connection to the provider could be made: the request was certainly not sent."""


def _request_head(url: URL, access_token: str) -> bytes:
    host = url.raw_host or ""
    if not url.is_default_port():
        host = f"{host}:{url.port}"
    # No Accept-Encoding: the answer is a few hundred bytes, identity is cheapest.
    return (
        f"POST {url.raw_path_qs} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {access_token}\r\nContent-Type: application/json\r\n"
        "Accept: application/json\r\nUser-Agent: PyTake\r\nContent-Length: "
    ).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), b"".join(self.body)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(exc or ConnectionResetError("the provider closed the connection"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.body = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    @property
    def usable(self) -> bool:
        return self.reusable and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class GraphPool:
    """Idle keep-alive connections per origin, at most `limit` in use at once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: URL, request: bytes, seconds: float | None) -> tuple[int, bytes]:
        """Send a ready request (head and body); returns the answer's status and body."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        async with self._slots, asyncio.timeout(seconds):
            origin = (url.raw_host or "", url.port or 443, url.scheme == "https")
            connection = self._idle_connection(origin) or await self._connect(origin)
            try:
                answer = await connection.request(request)
            except BaseException:
                connection.close()  # a late answer must not be read as the next request's
                raise
            if connection.usable:
                self._idle.setdefault(origin, []).append(connection)
            else:
                connection.close()
            return answer

    def _idle_connection(self, origin: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
        return None

    async def _connect(self, origin: tuple[str, int, bool]) -> _Connection:
        host, port, tls = origin
        if tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, host, port, ssl=self._ssl if tls else None
            )
        except OSError as exc:
            raise ProviderUnreachable(f"cannot connect to {host}:{port}: {exc}") from exc
        return connection

    def close(self) -> None:
        """Close every idle connection (those in use close when their request ends)."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class GraphConnector(aiohttp.TCPConnector):
    """The provider session's connector, carrying the send path's `GraphPool` (closed with it)."""

    def __init__(self, *, limit: int, **kwargs: Any) -> None:
        super().__init__(limit=limit, **kwargs)
        self.graph_pool = GraphPool(limit)

    async def close(self, *, abort_ssl: bool = False) -> None:
        self.graph_pool.close()
        await super().close(abort_ssl=abort_ssl)

"""Cloud API-shaped outbound content → Evolution API v2 send calls.

On WHATSAPP-BAILEYS, buttons and lists are accepted by Evolution but mostly never shown on
phones (WhatsApp dropped them for unofficial clients), so they are rendered as numbered text.
"""

from __future__ import annotations

from typing import Any

from pytake.whatsapp.provider import OutboundMessage, ProviderError, normalize_recipient

_SEND_MEDIA_TYPES = {"image", "video", "document"}  # the rest have their own endpoints


def jid(number: str) -> str:
    """A user JID for a phone number (JIDs pass unchanged)."""
    return number if "@" in number else f"{number}@s.whatsapp.net"


def numbered_options(interactive: dict[str, Any]) -> list[tuple[str, str]]:
    """(reply id, title) of each choice of a button/list message, in the order they're numbered."""
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        replies = [b.get("reply") or {} for b in action.get("buttons") or []]
        return [(str(r.get("id", "")), str(r.get("title", ""))) for r in replies]
    if interactive.get("type") == "list":
        rows = [row for s in action.get("sections") or [] for row in s.get("rows") or []]
        return [(str(r.get("id", "")), str(r.get("title", ""))) for r in rows]
    return []


def interactive_as_text(interactive: dict[str, Any]) -> str:
    """Render an interactive message as plain text with numbered choices."""
    header = interactive.get("header") or {}
    parts = [header.get("text")] if header.get("type") == "text" else []
    parts.append((interactive.get("body") or {}).get("text"))
    options = numbered_options(interactive)
    if options:
        parts.append("\n".join(f"{n}. {title}" for n, (_, title) in enumerate(options, 1)))
    if interactive.get("type") == "cta_url":
        params = (interactive.get("action") or {}).get("parameters") or {}
        parts.append(f"{params.get('display_text', '')}: {params.get('url', '')}")
    parts.append((interactive.get("footer") or {}).get("text"))
    return "\n\n".join(str(p) for p in parts if p)


def to_evolution(message: OutboundMessage, *, numbered_text: bool) -> tuple[str, dict[str, Any]]:
    """(send action, request body) for one outbound message."""
    number = normalize_recipient(message.to)
    content = message.content
    action, body = _translate(message.type, content, number, numbered_text)
    body["number"] = number
    if message.context_message_id and action != "sendReaction":
        body["quoted"] = {"key": {"id": message.context_message_id}}
    return action, body


def _translate(
    kind: str, content: dict[str, Any], number: str, as_text: bool
) -> tuple[str, dict[str, Any]]:
    if kind == "text":
        return "sendText", {
            "text": content.get("body", ""),
            "linkPreview": bool(content.get("preview_url", False)),
        }
    if kind in _SEND_MEDIA_TYPES:
        return "sendMedia", _media(kind, content)
    if kind == "audio":
        return "sendWhatsAppAudio", {"audio": _media_source(content, kind)}
    if kind == "sticker":
        return "sendSticker", {"sticker": _media_source(content, kind)}
    if kind == "location":
        # Evolution's schema requires name and address; Cloud treats them as optional.
        return "sendLocation", {
            "latitude": content.get("latitude"),
            "longitude": content.get("longitude"),
            "name": content.get("name") or "",
            "address": content.get("address") or "",
        }
    if kind == "contacts":
        return "sendContact", {"contact": [_contact(c) for c in content.get("contacts", [])]}
    if kind == "reaction":
        return "sendReaction", _reaction(content, number)
    if kind == "interactive":
        if as_text:
            return "sendText", {"text": interactive_as_text(content)}
        return _native_interactive(content)
    if kind == "template":
        return "sendTemplate", _template(content)
    raise ProviderError(
        f"unsupported message type {kind!r}", code=100, details=f"type {kind!r} is unknown"
    )


def _reaction(content: dict[str, Any], number: str) -> dict[str, Any]:
    # Reactions usually answer the customer's message, hence fromMe false unless told otherwise.
    key = {
        "id": content.get("message_id"),
        "remoteJid": jid(number),
        "fromMe": bool(content.get("from_me", False)),
    }
    return {"key": key, "reaction": content.get("emoji", "")}


def _template(content: dict[str, Any]) -> dict[str, Any]:
    language = content.get("language") or {}
    return {
        "name": content.get("name"),
        "language": language.get("code") if isinstance(language, dict) else language,
        "components": content.get("components", []),
    }


def _media_source(content: dict[str, Any], kind: str) -> str:
    # Evolution takes a URL or base64; Meta media ids mean nothing to it.
    source = content.get("link") or content.get("base64")
    if not source:
        raise ProviderError(
            f"{kind} for Evolution needs a link or base64 data",
            code=100,
            kind="not_supported",
            details="Evolution cannot send media by Meta media id",
        )
    return str(source)


def _media(kind: str, content: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"mediatype": kind, "media": _media_source(content, kind)}
    for ours, theirs in (
        ("caption", "caption"),
        ("filename", "fileName"),
        ("mime_type", "mimetype"),
    ):
        if content.get(ours):
            body[theirs] = content[ours]
    return body


def _contact(contact: dict[str, Any]) -> dict[str, Any]:
    phones = contact.get("phones") or [{}]
    emails = contact.get("emails") or [{}]
    urls = contact.get("urls") or [{}]
    name = contact.get("name") or {}
    result = {
        "fullName": name.get("formatted_name") or name.get("first_name") or "",
        "wuid": phones[0].get("wa_id") or normalize_recipient(phones[0].get("phone") or ""),
        "phoneNumber": phones[0].get("phone") or "",
        "organization": (contact.get("org") or {}).get("company"),
        "email": emails[0].get("email"),
        "url": urls[0].get("url"),
    }
    return {key: val for key, val in result.items() if val is not None}


def _list_section(section: dict[str, Any]) -> dict[str, Any]:
    rows = [
        {"title": r.get("title"), "rowId": r.get("id"), "description": r.get("description", "")}
        for r in section.get("rows") or []
    ]
    return {"title": section.get("title", ""), "rows": rows}


def _native_interactive(content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = content.get("type")
    action = content.get("action") or {}
    header = (content.get("header") or {}).get("text", "")
    body_text = (content.get("body") or {}).get("text", "")
    # Evolution requires a title where Cloud's header is optional: promote the body then.
    title, description = (header, body_text) if header else (body_text, "")
    footer = (content.get("footer") or {}).get("text", "")
    common = {"title": title, "description": description, "footer": footer}
    if kind == "button":
        buttons = [
            {"type": "reply", "displayText": label, "id": reply_id}
            for reply_id, label in numbered_options(content)
        ]
        return "sendButtons", {**common, "buttons": buttons}
    if kind == "cta_url":
        params = action.get("parameters") or {}
        button = {
            "type": "url",
            "displayText": params.get("display_text"),
            "url": params.get("url"),
        }
        return "sendButtons", {**common, "buttons": [button]}
    if kind == "list":
        return "sendList", {
            "title": title,
            "description": description,
            "footerText": footer,
            "buttonText": action.get("button", ""),
            "sections": [_list_section(section) for section in action.get("sections") or []],
        }
    raise ProviderError(
        f"interactive type {kind!r} is not supported by Evolution",
        kind="not_supported",
        retryable=False,
    )

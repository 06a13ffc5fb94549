"""The simulator's template registry per WABA: creation answers PENDING, a review after
`template_review_seconds` approves or rejects by rule, and every change (status, quality,
category) reaches the business as Meta's signed account-level webhook.

Review rules, in order:
- the name was used by a template of the WABA deleted less than 30 days ago → REJECTED
  (`INVALID_FORMAT`), as Meta keeps deleted names for 30 days;
- the body (or header) contains one of `template_banned_words` → REJECTED (`ABUSIVE_CONTENT`);
- otherwise APPROVED, unless `template_auto_review` is off (it stays PENDING until the control
  API decides).
A name already live in the same language is refused at once (Graph error 100/2388024).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pytake.whatsapp.simulator.emitter import WebhookEmitter
from pytake.whatsapp.simulator.graph_validation import GraphFault
from pytake.whatsapp.simulator.state import SimState, SimTemplate

NAME_REUSE_SECONDS = 30 * 24 * 3600
DUPLICATE_SUBCODE = 2388024
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")


def _invalid(details: str, subcode: int | None = None) -> GraphFault:
    return GraphFault(100, "Invalid parameter", details=details, subcode=subcode)


class TemplateRegistry:
    """Creation, deletion, review and the account-level webhooks of templates."""

    def __init__(self, state: SimState, emitter: WebhookEmitter) -> None:
        self.state = state
        self.emitter = emitter

    def create(self, waba_id: str, body: dict[str, Any]) -> SimTemplate:
        """`POST /{waba_id}/message_templates`: a PENDING template, reviewed in the background."""
        name, language, category = body.get("name"), body.get("language"), body.get("category")
        if not isinstance(name, str) or not name:
            raise GraphFault(100, "The parameter name is required.")
        if not isinstance(language, str) or not language:
            raise GraphFault(100, "The parameter language is required.")
        category = str(category or "").upper()
        if category not in CATEGORIES:
            raise _invalid(f"category must be one of {', '.join(CATEGORIES)}")
        components = body.get("components")
        if not isinstance(components, list) or not components:
            raise GraphFault(100, "The parameter components is required.")
        existing = self.state.templates.get((waba_id, name, language))
        if existing is not None and existing.status != "DELETED":
            raise _invalid(
                f"Content in this language already exists: {name} ({language})",
                DUPLICATE_SUBCODE,
            )
        template = SimTemplate(
            waba_id,
            name,
            language,
            [c for c in components if isinstance(c, dict)],
            status="PENDING",
            category=category,
            parameter_format=str(body.get("parameter_format") or "POSITIONAL").upper(),
        )
        self.state.templates[(waba_id, name, language)] = template
        self.emitter.spawn(self._review(template))
        return template

    def delete(self, waba_id: str, name: str | None, hsm_id: str | None) -> None:
        """`DELETE /{waba_id}/message_templates?name=…[&hsm_id=…]`."""
        if not name:
            raise GraphFault(100, "The parameter name is required.")
        doomed = [
            key
            for key, t in self.state.templates.items()
            if t.waba_id == waba_id and t.name == name and hsm_id in (None, t.id)
        ]
        if not doomed:
            raise _invalid(f"Message template {name!r} not found")
        for key in doomed:
            del self.state.templates[key]
        self.state.deleted_template_names[(waba_id, name)] = self.state.clock()

    def find(self, template_id: str) -> SimTemplate:
        """A template by its id (KeyError if unknown)."""
        for template in self.state.templates.values():
            if template.id == template_id:
                return template
        raise KeyError(f"unknown template id {template_id}")

    def verdict(self, template: SimTemplate) -> tuple[str, str | None]:
        """The review's outcome by the rules in the module docstring: (status, reason)."""
        deleted_at = self.state.deleted_template_names.get((template.waba_id, template.name))
        if deleted_at is not None and self.state.clock() - deleted_at < NAME_REUSE_SECONDS:
            return "REJECTED", "INVALID_FORMAT"
        texts = " ".join(
            str(c.get("text") or "") for c in template.components if isinstance(c, dict)
        ).lower()
        if any(word.lower() in texts for word in self.state.settings.template_banned_words):
            return "REJECTED", "ABUSIVE_CONTENT"
        return "APPROVED", None

    def render(self, waba_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """What a phone shows for a template send: its text with the parameters filled in,
        and the quick-reply buttons the customer can tap (None for an unknown template)."""
        raw = body.get("template")
        obj: dict[str, Any] = raw if isinstance(raw, dict) else {}
        raw_language = obj.get("language")
        language: dict[str, Any] = raw_language if isinstance(raw_language, dict) else {}
        wanted = (waba_id, str(obj.get("name")), str(language.get("code")))
        template = self.state.templates.get(wanted)
        if template is None:
            return None
        given: dict[str, list[Any]] = {}
        for component in obj.get("components") or []:
            if isinstance(component, dict):
                key = str(component.get("type", "")).lower()
                given.setdefault(key, []).extend(component.get("parameters") or [])
        lines, quick_replies = [], []
        for component in template.components:
            kind = str(component.get("type", "")).upper()
            if kind in ("HEADER", "BODY", "FOOTER") and component.get("text"):
                lines.append(_fill(str(component["text"]), given.get(kind.lower(), [])))
            elif kind == "HEADER":
                lines.append(f"[{str(component.get('format', 'media')).lower()}]")
            for button in component.get("buttons") or [] if kind == "BUTTONS" else []:
                lines.append(f"[{button.get('text') or button.get('type')}]")
                if str(button.get("type", "")).upper() == "QUICK_REPLY":
                    quick_replies.append(
                        {"payload": button.get("text"), "text": button.get("text")}
                    )
        return {"text": "\n".join(lines), "quick_replies": quick_replies}

    async def _review(self, template: SimTemplate) -> None:
        await asyncio.sleep(self.state.settings.template_review_seconds)
        if not self.state.settings.template_auto_review or template.status != "PENDING":
            return
        status, reason = self.verdict(template)
        await self.set_status(template, status, reason)

    async def set_status(
        self, template: SimTemplate, status: str, reason: str | None = None
    ) -> list[int | None]:
        """Change a template's status and post `message_template_status_update`."""
        template.status = status.upper()
        template.reason = reason
        value: dict[str, Any] = {
            "event": template.status,
            "message_template_id": int(template.id),
            "message_template_name": template.name,
            "message_template_language": template.language,
            "message_template_category": template.category,
            "reason": reason or "NONE",
        }
        if template.status == "REJECTED":
            value["rejection_info"] = {
                "reason": _REJECTION_TEXT.get(reason or "", "The template breaks a policy"),
                "recommendation": "Edit the template and submit it again",
            }
        return await self.account_webhook(template.waba_id, "message_template_status_update", value)

    async def set_quality(self, template: SimTemplate, score: str) -> list[int | None]:
        """Change a template's quality and post `message_template_quality_update`."""
        previous, template.quality_score = template.quality_score, score.upper()
        value = {
            "previous_quality_score": previous,
            "new_quality_score": template.quality_score,
            "message_template_id": int(template.id),
            "message_template_name": template.name,
            "message_template_language": template.language,
        }
        return await self.account_webhook(
            template.waba_id, "message_template_quality_update", value
        )

    async def set_category(self, template: SimTemplate, category: str) -> list[int | None]:
        """Recategorise a template and post `template_category_update`."""
        previous, template.category = template.category, category.upper()
        value = {
            "message_template_id": int(template.id),
            "message_template_name": template.name,
            "message_template_language": template.language,
            "previous_category": previous,
            "new_category": template.category,
        }
        return await self.account_webhook(template.waba_id, "template_category_update", value)

    async def account_webhook(
        self, waba_id: str, field: str, value: dict[str, Any]
    ) -> list[int | None]:
        """Post a WABA-level change (entry id = WABA, no phone metadata) to every app (webhook
        URL and app secret) of the WABA's numbers; returns each receiver's final status."""
        body = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": waba_id,
                    "time": int(self.state.clock()),
                    "changes": [{"field": field, "value": value}],
                }
            ],
        }
        apps = {
            (n.webhook_url, n.app_secret)
            for n in self.state.numbers.values()
            if n.waba_id == waba_id and n.webhook_url
        }
        return [await self.emitter.post_meta(url, secret, body) for url, secret in sorted(apps)]


def _fill(text: str, parameters: list[Any]) -> str:
    """`{{1}}` by position, `{{name}}` by `parameter_name`."""
    by_name = {str(p.get("parameter_name")): p for p in parameters if isinstance(p, dict)}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.isdigit() and int(name) <= len(parameters):
            parameter = parameters[int(name) - 1]
        else:
            parameter = by_name.get(name)
        if not isinstance(parameter, dict):
            return match.group(0)
        kind = parameter.get("type", "text")
        return str(parameter.get(kind) if kind != "text" else parameter.get("text"))

    return _PLACEHOLDER.sub(value, text)


_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_REJECTION_TEXT = {
    "INVALID_FORMAT": "The name was used by a template deleted less than 30 days ago",
    "ABUSIVE_CONTENT": "The template contains content WhatsApp does not allow",
}

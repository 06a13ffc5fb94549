"""`{{variables}}` in message texts, rendered by Jinja2's sandbox with strict undefined values.

User-supplied templates must not execute code (the sandbox) and a missing value must be an
error the caller sees (422 naming it), never a silently empty string.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from pytake.errors import FieldError, ValidationFailed
from pytake.models import Contact

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_MARKERS = ("{{", "{%", "{#")

# Where placeholders may appear, per message type (paths into the Graph content object).
_TEXT_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "text": (("body",),),
    "image": (("caption",),),
    "video": (("caption",),),
    "document": (("caption",),),
    "interactive": (("header", "text"), ("body", "text"), ("footer", "text")),
}


def contact_context(contact: Contact) -> dict[str, Any]:
    """What `{{contact.…}}` sees: its attributes, then its own fields (which win)."""
    values: dict[str, Any] = dict(contact.attributes or {})
    own = {
        "id": str(contact.id),
        "name": contact.name or contact.profile_name,
        "profile_name": contact.profile_name,
        "whatsapp_id": contact.whatsapp_id,
        "phone": contact.whatsapp_id,
        "email": contact.email,
        "attributes": dict(contact.attributes or {}),
    }
    # An unset field is undefined (a 422 if used), so `| default(...)` works as expected.
    values.update({k: v for k, v in own.items() if v is not None})
    if values.get("name"):
        values.setdefault("first_name", str(values["name"]).split()[0])
    return values


@lru_cache(maxsize=512)
def _compile(source: str) -> tuple[Any, frozenset[str]]:
    parsed = _ENV.parse(source)
    return _ENV.from_string(parsed), frozenset(meta.find_undeclared_variables(parsed))


_LONE_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")


@lru_cache(maxsize=512)
def _lone_path(source: str) -> tuple[str, ...] | None:
    match = _LONE_PLACEHOLDER.fullmatch(source)
    return tuple(match.group(1).split(".")) if match else None


def _lone_value(source: str, context: dict[str, Any]) -> str | None:
    """The text of a source that is one `{{a.b.c}}` naming a string (a campaign's
    `{{contact.name}}`, rendered per recipient), as Jinja renders it; None for anything else
    (which Jinja renders, or refuses)."""
    path = _lone_path(source)
    if path is None:
        return None
    value: Any = context
    for key in path:
        # Jinja tries an attribute before an item: a dict's own (`items`, `keys`…) wins there.
        if not isinstance(value, dict) or key not in value or hasattr(dict, key):
            return None
        value = value[key]
    return value if isinstance(value, str) else None


def render_text(source: str, context: dict[str, Any], field: str) -> str:
    """Render one text; a missing variable or a template error is a 422 on `field`."""
    if not any(marker in source for marker in _MARKERS):
        return source
    lone = _lone_value(source, context)
    if lone is not None:
        return lone
    try:
        template, names = _compile(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed.on(field, f"Invalid placeholder syntax: {exc.message}") from exc
    missing = sorted(name for name in names if name not in context)
    if missing:
        raise ValidationFailed(
            details=[
                FieldError(f"variables.{name}", f"Undefined variable '{name}' used in {field}")
                for name in missing
            ]
        )
    try:
        return str(template.render(context))
    except UndefinedError as exc:
        raise ValidationFailed.on(field, f"Undefined variable: {exc.message}") from exc
    except SecurityError as exc:
        raise ValidationFailed.on(field, f"Not allowed in a placeholder: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValidationFailed.on(field, f"Placeholder could not be rendered: {exc}") from exc


def render_content(
    kind: str, content: dict[str, Any], variables: dict[str, Any], contact: Contact
) -> dict[str, Any]:
    """A copy of the Graph content with every placeholder rendered."""
    context: dict[str, Any] | None = None
    result = dict(content)
    for path in _TEXT_PATHS.get(kind, ()):
        holder, value = _lookup(result, path)
        if holder is None or not isinstance(value, str):
            continue
        if context is None:
            context = {**variables, "contact": contact_context(contact)}
        holder[path[-1]] = render_text(value, context, ".".join((kind, *path)))
    if kind == "template":
        context = context or {**variables, "contact": contact_context(contact)}
        _render_template_parameters(result, context)
    return result


def _lookup(content: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any] | None, Any]:
    holder: Any = content
    for key in path[:-1]:
        child = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(child, dict):
            return None, None
        holder[key] = child = dict(child)  # copy on the way down: the caller's dict is kept
        holder = child
    return holder, holder.get(path[-1])


def _render_template_parameters(content: dict[str, Any], context: dict[str, Any]) -> None:
    components = content.get("components") or []
    content["components"] = rendered = []
    for c_index, component in enumerate(components):
        component = dict(component)
        params = []
        for p_index, param in enumerate(component.get("parameters") or []):
            param = dict(param)
            if isinstance(param.get("text"), str):
                where = f"template.components.{c_index}.parameters.{p_index}.text"
                param["text"] = render_text(param["text"], context, where)
            params.append(param)
        if "parameters" in component:
            component["parameters"] = params
        rendered.append(component)

"""Message templates: CRUD, validation against Meta's rules, sync, status webhooks.

Other domains call `pytake.template.service` (see its docstring for the public API:
`sendable_template`, `template_message`, `send_components`, `ensure_approved`...).
"""

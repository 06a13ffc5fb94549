// What the inbox shows of a message: pure functions of the API's shapes (unit-tested).
import type { Schemas } from "../api/types";

export type Message = Schemas["MessageOut"];
export type Conversation = Schemas["ConversationOut"];

/** The ticks of an outbound message: ✓ sent, ✓✓ delivered, blue ✓✓ read, or failed. */
export type Ticks = "pending" | "sent" | "delivered" | "read" | "failed";

export function ticksOf(message: Pick<Message, "direction" | "status">): Ticks | null {
  if (message.direction !== "outbound") return null;
  switch (message.status) {
    case "sent":
    case "delivered":
    case "read":
    case "failed":
      return message.status;
    default:
      return "pending"; // queued, sending
  }
}

/** Meta's reason for a failure, as the API stored it. */
export function failureReason(message: Pick<Message, "error">): string | null {
  const e = message.error;
  if (!e) return null;
  const parts = [e.title, e.message].filter((p): p is string => Boolean(p));
  const text = [...new Set(parts)].join(": ");
  if (e.code !== null && e.code !== undefined) return text ? `${text} (${e.code})` : String(e.code);
  return text || null;
}

const MEDIA = new Set(["image", "video", "audio", "document", "sticker"]);

export interface Shown {
  /** The kind the bubble renders: text, media (by type), location, reaction, template, other. */
  kind: "text" | "media" | "location" | "reaction" | "template" | "contacts" | "interactive" | "other";
  text: string;
  /** For media: the file name of a document, when known. */
  filename?: string;
  mimeType?: string;
  latitude?: number;
  longitude?: number;
  emoji?: string;
  /** The provider id of the message this one reacts or replies to. */
  target?: string;
}

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** How a message's content is shown (media by type and caption; the bytes are not fetched). */
export function shownContent(message: Pick<Message, "type" | "content">): Shown {
  const c = (message.content ?? {}) as Record<string, unknown>;
  const type = message.type;
  if (type === "text") return { kind: "text", text: str(c.text) || str(c.body) };
  if (MEDIA.has(type)) {
    const inner = (c[type] as Record<string, unknown> | undefined) ?? c;
    return {
      kind: "media",
      text: str(inner.caption) || str(c.caption),
      filename: str(inner.filename) || str(c.filename) || undefined,
      mimeType: str(inner.mime_type) || str(c.mime_type) || undefined,
    };
  }
  if (type === "location") {
    const loc = (c.location as Record<string, unknown> | undefined) ?? c;
    return {
      kind: "location",
      text: [str(loc.name), str(loc.address)].filter(Boolean).join(", "),
      latitude: typeof loc.latitude === "number" ? loc.latitude : undefined,
      longitude: typeof loc.longitude === "number" ? loc.longitude : undefined,
    };
  }
  if (type === "reaction") {
    const r = (c.reaction as Record<string, unknown> | undefined) ?? c;
    return { kind: "reaction", text: "", emoji: str(r.emoji), target: str(r.message_id) || undefined };
  }
  if (type === "template") {
    const t = (c.template as Record<string, unknown> | undefined) ?? c;
    return { kind: "template", text: str(c.text) || str(c.body) || str(t.name) };
  }
  if (type === "contacts") return { kind: "contacts", text: "" };
  if (type === "interactive" || type === "button") {
    const body = c.body as Record<string, unknown> | undefined;
    const reply = (c.button_reply ?? c.list_reply ?? c.button) as Record<string, unknown> | undefined;
    return { kind: "interactive", text: str(body?.text) || str(reply?.title) || str(c.text) };
  }
  return { kind: "other", text: str(c.text) || str(c.caption) };
}

/** True while the customer's 24-hour window is open at `now` (free-form messages allowed). */
export function windowOpen(conversation: Pick<Conversation, "window_expires_at">, now: number): boolean {
  const expires = conversation.window_expires_at;
  return expires ? Date.parse(expires) > now : false;
}

/** The conversation's display name: the contact's name, else their number. */
export function contactLabel(conversation: Pick<Conversation, "contact">): string {
  return conversation.contact.name || conversation.contact.whatsapp_id;
}

/** The id of the conversation after (`step` 1) or before (-1) `current` in `ids`. */
export function neighbour(ids: string[], current: string | undefined, step: 1 | -1): string | undefined {
  if (ids.length === 0) return undefined;
  const at = current ? ids.indexOf(current) : -1;
  if (at === -1) return step === 1 ? ids[0] : ids[ids.length - 1];
  return ids[Math.min(ids.length - 1, Math.max(0, at + step))];
}

import { describe, expect, it } from "vitest";

import { failureReason, neighbour, shownContent, ticksOf, windowOpen } from "./messages";

describe("ticksOf", () => {
  it("maps outbound statuses to ticks and leaves inbound ones alone", () => {
    expect(ticksOf({ direction: "outbound", status: "queued" })).toBe("pending");
    expect(ticksOf({ direction: "outbound", status: "sent" })).toBe("sent");
    expect(ticksOf({ direction: "outbound", status: "delivered" })).toBe("delivered");
    expect(ticksOf({ direction: "outbound", status: "read" })).toBe("read");
    expect(ticksOf({ direction: "outbound", status: "failed" })).toBe("failed");
    expect(ticksOf({ direction: "inbound", status: "received" })).toBeNull();
  });
});

describe("failureReason", () => {
  it("joins Meta's title and message with the code", () => {
    const error = { code: 131047, title: "Re-engagement message", message: "More than 24 hours" };
    expect(failureReason({ error })).toBe("Re-engagement message: More than 24 hours (131047)");
    expect(failureReason({ error: { code: null, title: "Oops", message: "Oops" } })).toBe("Oops");
    expect(failureReason({ error: null })).toBeNull();
  });
});

describe("shownContent", () => {
  it("shows media by type and caption without its bytes", () => {
    expect(shownContent({ type: "image", content: { image: { id: "m1", caption: "Receipt" } } })).toEqual({
      kind: "media",
      text: "Receipt",
      filename: undefined,
      mimeType: undefined,
    });
    const doc = shownContent({ type: "document", content: { filename: "a.pdf", mime_type: "application/pdf" } });
    expect(doc.filename).toBe("a.pdf");
    expect(doc.mimeType).toBe("application/pdf");
  });

  it("reads texts, locations and reactions", () => {
    expect(shownContent({ type: "text", content: { text: "hi" } }).text).toBe("hi");
    const loc = shownContent({ type: "location", content: { latitude: -23.5, longitude: -46.6, name: "Shop" } });
    expect(loc).toMatchObject({ kind: "location", text: "Shop", latitude: -23.5 });
    const r = shownContent({ type: "reaction", content: { emoji: "👍", message_id: "wamid.1" } });
    expect(r).toMatchObject({ kind: "reaction", emoji: "👍", target: "wamid.1" });
  });
});

describe("windowOpen", () => {
  it("is open until window_expires_at, closed without one", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    expect(windowOpen({ window_expires_at: "2026-01-01T12:00:01Z" }, now)).toBe(true);
    expect(windowOpen({ window_expires_at: "2026-01-01T11:59:59Z" }, now)).toBe(false);
    expect(windowOpen({ window_expires_at: null }, now)).toBe(false);
  });
});

describe("neighbour", () => {
  it("steps through the list and stops at its ends", () => {
    const ids = ["a", "b", "c"];
    expect(neighbour(ids, "b", 1)).toBe("c");
    expect(neighbour(ids, "c", 1)).toBe("c");
    expect(neighbour(ids, "a", -1)).toBe("a");
    expect(neighbour(ids, undefined, 1)).toBe("a");
    expect(neighbour(ids, "gone", -1)).toBe("c");
    expect(neighbour([], "a", 1)).toBeUndefined();
  });
});

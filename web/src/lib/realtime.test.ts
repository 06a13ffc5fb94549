import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { Frame } from "./realtime";

// The socket's module reads the browser's session and WebSocket: both stood in for here.
vi.mock("../auth/current", () => ({
  session: { accessToken: () => "access-1", get: () => ({}), subscribe: () => () => {} },
}));

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static all: FakeSocket[] = [];
  readyState = FakeSocket.CONNECTING;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  frame(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop() {
    this.readyState = 3;
    this.onclose?.();
  }
}

function socket(n: number): FakeSocket {
  const found = FakeSocket.all[n];
  if (!found) throw new Error(`socket ${n} was never opened`);
  return found;
}

beforeEach(() => {
  FakeSocket.all = [];
  vi.useFakeTimers();
  vi.stubGlobal("WebSocket", FakeSocket);
  vi.stubGlobal("window", { location: { protocol: "http:", host: "pytake.test" } });
  vi.resetModules();
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("the realtime socket", () => {
  it("says resync when it starts with nothing to resume, and resumes after a drop without it", async () => {
    const { subscribe } = await import("./realtime");
    const frames: Frame[] = [];
    const stop = subscribe((f) => frames.push(f));

    const first = socket(0);
    expect(first.url).toBe("ws://pytake.test/ws");
    first.open();
    expect(first.sent).toEqual([{ type: "auth", token: "access-1" }]);
    first.frame({ type: "auth_ok" });
    // Whatever changed before this socket was authenticated is not replayed: fetch again.
    expect(frames).toEqual([{ type: "resync" }]);

    first.frame({ type: "message", id: 7, data: { conversation_id: "c1" } });
    first.drop();
    vi.advanceTimersByTime(1000);
    const second = socket(1);
    second.open();
    expect(second.sent).toEqual([{ type: "auth", token: "access-1", last_event_id: 7 }]);
    second.frame({ type: "auth_ok" });
    // Resumed: the server replays what was missed, so no resync.
    expect(frames.map((f) => f.type)).toEqual(["resync", "message"]);
    stop();
  });
});

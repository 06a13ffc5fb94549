// /ws: one socket per tab, authenticated by its first message, resumed after a drop with
// `last_event_id` (the server replays what was missed). Frames are passed to the listeners.
// A socket that starts with nothing to resume from (the tab's first, or after sign-in) gets
// no replay: what changed between a page's fetch and the socket's `auth_ok` would be missed,
// so the listeners are sent a `resync` frame then, to fetch again what they show.
import { session } from "../auth/current";

export interface Frame {
  type:
    | "message"
    | "status"
    | "conversation"
    | "contact"
    | "campaign"
    | "template"
    | "resync"
    | string;
  event?: string;
  id?: number;
  data?: Record<string, unknown>;
}

type Listener = (frame: Frame) => void;

const listeners = new Set<Listener>();
let socket: WebSocket | null = null;
let lastEventId: number | null = null;
let retryMs = 1000;
let retryTimer: ReturnType<typeof setTimeout> | null = null;
let pingTimer: ReturnType<typeof setInterval> | null = null;

/** The socket's URL on this origin (ws: or wss: like the page). */
export function socketUrl(location: Pick<Location, "protocol" | "host">): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}

function connect(): void {
  const token = session.accessToken();
  if (!token || socket || listeners.size === 0) return;
  const ws = new WebSocket(socketUrl(window.location));
  socket = ws;
  let resumed = false;
  ws.onopen = () => {
    const auth: Record<string, unknown> = { type: "auth", token };
    resumed = lastEventId !== null;
    if (resumed) auth.last_event_id = lastEventId;
    ws.send(JSON.stringify(auth));
  };
  ws.onmessage = (event) => {
    let frame: Frame;
    try {
      frame = JSON.parse(String(event.data)) as Frame;
    } catch {
      return;
    }
    if (frame.type === "auth_ok") {
      retryMs = 1000;
      if (!resumed) listeners.forEach((l) => l({ type: "resync" }));
      return;
    }
    if (frame.type === "pong") return;
    if (typeof frame.id === "number") lastEventId = Math.max(lastEventId ?? 0, frame.id);
    listeners.forEach((l) => l(frame));
  };
  ws.onclose = () => {
    socket = null;
    if (listeners.size > 0) schedule();
  };
  if (!pingTimer) {
    pingTimer = setInterval(() => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
    }, 25_000);
  }
}

function schedule(): void {
  if (retryTimer) return;
  retryTimer = setTimeout(() => {
    retryTimer = null;
    connect();
  }, retryMs);
  retryMs = Math.min(retryMs * 2, 30_000);
}

function disconnect(): void {
  if (retryTimer) clearTimeout(retryTimer);
  if (pingTimer) clearInterval(pingTimer);
  retryTimer = pingTimer = null;
  const ws = socket;
  socket = null;
  if (!ws) return;
  ws.onclose = null;
  // Closing a socket still connecting makes the browser log an error: close it once open.
  if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);
  else ws.close(1000);
}

/** Listen to the socket (opened with the first listener, closed with the last). */
export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  connect();
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) disconnect();
  };
}

session.subscribe(() => {
  if (!session.get()) {
    lastEventId = null;
    disconnect();
  } else if (!socket) {
    connect();
  }
});

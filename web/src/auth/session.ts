// The signed-in session: tokens in localStorage (shared by tabs), the access token refreshed in
// the background before it expires, one refresh at a time (refresh tokens rotate: two refreshes
// with one token would sign the user out).
import type { Schemas } from "../api/types";

export type TokenPair = Schemas["TokenPairOut"];
export type User = Schemas["UserBrief"];

export interface SignedIn {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms at which to refresh (a margin before the access token expires). */
  refreshAt: number;
  user: User;
}

export const STORAGE_KEY = "pytake.session";

/** When to refresh a token that lives `expiresIn` seconds: a fifth early, at most a minute. */
export function refreshDelayMs(expiresIn: number): number {
  const margin = Math.min(60, expiresIn * 0.2);
  return Math.max(1000, Math.round((expiresIn - margin) * 1000));
}

export function fromPair(pair: TokenPair, now: number): SignedIn {
  return {
    accessToken: pair.access_token,
    refreshToken: pair.refresh_token,
    refreshAt: now + refreshDelayMs(pair.expires_in),
    user: pair.user,
  };
}

/** The outcome of asking the API for a new pair. */
export type RefreshResult = { ok: true; pair: TokenPair } | { ok: false; rejected: boolean };

export interface SessionDeps {
  storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  refresh: (refreshToken: string) => Promise<RefreshResult>;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  /** Serialises refreshes across tabs (navigator.locks) when available. */
  withLock?: <T>(fn: () => Promise<T>) => Promise<T>;
}

const RETRY_MS = 5000;

export class Session {
  private current: SignedIn | null = null;
  private listeners = new Set<() => void>();
  private timer: unknown = null;
  private inflight: Promise<boolean> | null = null;
  private readonly now: () => number;

  constructor(private readonly deps: SessionDeps) {
    this.now = deps.now ?? Date.now;
    this.current = this.read();
    this.schedule();
  }

  get = (): SignedIn | null => this.current;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Signed in with an access token that is not due for refresh yet. */
  isFresh(): boolean {
    return this.current !== null && this.current.refreshAt > this.now();
  }

  accessToken(): string | null {
    return this.current?.accessToken ?? null;
  }

  signIn(pair: TokenPair): void {
    this.set(fromPair(pair, this.now()), true);
  }

  signOut(): void {
    this.set(null, true);
  }

  /** Another tab changed the stored session: adopt it. */
  adoptStored(): void {
    this.set(this.read(), false);
  }

  /** Get a new access token (once, however many callers ask); false when signed out. */
  refresh(): Promise<boolean> {
    if (this.inflight) return this.inflight;
    const run = async (): Promise<boolean> => {
      const stored = this.read();
      const known = this.current;
      if (!stored) {
        this.set(null, false);
        return false;
      }
      if (known && stored.refreshToken !== known.refreshToken && stored.refreshAt > this.now()) {
        this.set(stored, false); // another tab refreshed first
        return true;
      }
      const result = await this.deps.refresh(stored.refreshToken);
      if (result.ok) {
        this.set(fromPair(result.pair, this.now()), true);
        return true;
      }
      if (result.rejected) {
        this.set(null, true);
        return false;
      }
      this.scheduleIn(RETRY_MS); // offline or server down: keep the session, try again soon
      return false;
    };
    const lock = this.deps.withLock ?? ((fn) => fn());
    this.inflight = lock(run).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private set(next: SignedIn | null, persist: boolean): void {
    this.current = next;
    if (persist && this.deps.storage) {
      if (next) this.deps.storage.setItem(STORAGE_KEY, JSON.stringify(next));
      else this.deps.storage.removeItem(STORAGE_KEY);
    }
    this.schedule();
    this.listeners.forEach((l) => l());
  }

  private read(): SignedIn | null {
    const raw = this.deps.storage?.getItem(STORAGE_KEY);
    if (!raw) return null;
    try {
      const parsed = JSON.parse(raw) as SignedIn;
      return parsed.accessToken && parsed.refreshToken && parsed.user ? parsed : null;
    } catch {
      return null;
    }
  }

  private schedule(): void {
    if (!this.current) {
      this.cancel();
      return;
    }
    this.scheduleIn(Math.max(0, this.current.refreshAt - this.now()));
  }

  private scheduleIn(ms: number): void {
    this.cancel();
    const setTimer = this.deps.setTimer ?? ((fn, delay) => setTimeout(fn, delay));
    this.timer = setTimer(() => void this.refresh(), ms);
  }

  private cancel(): void {
    if (this.timer !== null) {
      const clear = this.deps.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
      clear(this.timer);
      this.timer = null;
    }
  }
}

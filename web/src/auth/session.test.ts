import { describe, expect, it } from "vitest";

import { refreshDelayMs, Session, STORAGE_KEY, type RefreshResult, type TokenPair } from "./session";

function memoryStorage() {
  const items = new Map<string, string>();
  return {
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
    removeItem: (k: string) => void items.delete(k),
    items,
  };
}

function pair(n: number, expiresIn = 900): TokenPair {
  return {
    access_token: `access-${n}`,
    refresh_token: `refresh-${n}`,
    token_type: "bearer",
    expires_in: expiresIn,
    user: {
      id: "u1",
      email: "a@example.com",
      full_name: "Ana",
      role: "agent",
      organization_id: "o1",
    },
  };
}

function harness(answers: RefreshResult[]) {
  let now = 1_000_000;
  const timers: { at: number; fn: () => void }[] = [];
  const asked: string[] = [];
  const storage = memoryStorage();
  const session = new Session({
    storage,
    now: () => now,
    setTimer: (fn, ms) => {
      const timer = { at: now + ms, fn };
      timers.push(timer);
      return timer;
    },
    clearTimer: (t) => timers.splice(timers.indexOf(t as (typeof timers)[number]), 1),
    refresh: async (token) => {
      asked.push(token);
      return answers.shift() ?? { ok: false, rejected: true };
    },
  });
  const advance = (ms: number) => {
    now += ms;
    for (const t of timers.filter((t) => t.at <= now)) {
      timers.splice(timers.indexOf(t), 1);
      t.fn();
    }
  };
  return { session, storage, asked, advance, timers };
}

describe("refreshDelayMs", () => {
  it("refreshes a fifth early, at most a minute early, never sooner than a second", () => {
    expect(refreshDelayMs(900)).toBe(840_000);
    expect(refreshDelayMs(10)).toBe(8_000);
    expect(refreshDelayMs(0)).toBe(1_000);
  });
});

describe("Session", () => {
  it("refreshes in the background before the token expires, and stores the new pair", async () => {
    const h = harness([{ ok: true, pair: pair(2) }]);
    h.session.signIn(pair(1));
    expect(h.session.accessToken()).toBe("access-1");
    h.advance(839_999);
    expect(h.asked).toEqual([]);
    h.advance(1);
    await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(h.asked).toEqual(["refresh-1"]);
    expect(h.session.accessToken()).toBe("access-2");
    expect(JSON.parse(h.storage.items.get(STORAGE_KEY)!).refreshToken).toBe("refresh-2");
  });

  it("asks once however many callers want a refresh at the same time", async () => {
    const h = harness([{ ok: true, pair: pair(2) }]);
    h.session.signIn(pair(1));
    const results = await Promise.all([h.session.refresh(), h.session.refresh()]);
    expect(results).toEqual([true, true]);
    expect(h.asked).toEqual(["refresh-1"]);
  });

  it("signs out when the server rejects the refresh token", async () => {
    const h = harness([{ ok: false, rejected: true }]);
    h.session.signIn(pair(1));
    expect(await h.session.refresh()).toBe(false);
    expect(h.session.get()).toBeNull();
    expect(h.storage.items.has(STORAGE_KEY)).toBe(false);
  });

  it("keeps the session when the server cannot be reached, and tries again", async () => {
    const h = harness([{ ok: false, rejected: false }]);
    h.session.signIn(pair(1));
    expect(await h.session.refresh()).toBe(false);
    expect(h.session.accessToken()).toBe("access-1");
    expect(h.timers.length).toBe(1);
  });

  it("adopts the pair another tab refreshed instead of spending a rotated token", async () => {
    const h = harness([]);
    h.session.signIn(pair(1));
    const stored = JSON.parse(h.storage.items.get(STORAGE_KEY)!);
    const other = { ...stored, accessToken: "access-9", refreshToken: "refresh-9" };
    h.storage.items.set(STORAGE_KEY, JSON.stringify(other));
    expect(await h.session.refresh()).toBe(true);
    expect(h.asked).toEqual([]);
    expect(h.session.accessToken()).toBe("access-9");
  });

  it("restores a stored session, and is not fresh once its refresh is due", () => {
    const h = harness([]);
    h.session.signIn(pair(1, 10));
    const restore = (at: number) =>
      new Session({
        storage: h.storage,
        now: () => at,
        refresh: async () => ({ ok: false, rejected: true }),
        setTimer: () => 0,
        clearTimer: () => {},
      });
    expect(restore(1_000_000 + 7_000).get()?.user.full_name).toBe("Ana");
    expect(restore(1_000_000 + 7_000).isFresh()).toBe(true);
    expect(restore(1_000_000 + 8_000).isFresh()).toBe(false);
  });
});

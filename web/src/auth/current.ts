import createClient from "openapi-fetch";

import type { Paths } from "../api/types";
import { Session, STORAGE_KEY, type RefreshResult } from "./session";

const auth = createClient<Paths>({ baseUrl: window.location.origin });

async function refreshPair(refreshToken: string): Promise<RefreshResult> {
  try {
    const { data, response } = await auth.POST("/v1/auth/refresh", {
      body: { refresh_token: refreshToken },
    });
    if (data) return { ok: true, pair: data };
    return { ok: false, rejected: response.status === 401 || response.status === 422 };
  } catch {
    return { ok: false, rejected: false };
  }
}

function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const locks = navigator.locks;
  return locks ? (locks.request("pytake-session-refresh", fn) as Promise<T>) : fn();
}

/** The browser's one session (every tab shares it through localStorage). */
export const session = new Session({ storage: window.localStorage, refresh: refreshPair, withLock });

window.addEventListener("storage", (event) => {
  if (event.key === STORAGE_KEY || event.key === null) session.adoptStored();
});

/** Sign out on the server (the refresh token is revoked), then here. */
export async function signOut(): Promise<void> {
  const current = session.get();
  if (current) {
    try {
      await auth.POST("/v1/auth/logout", {
        body: { refresh_token: current.refreshToken },
        keepalive: true, // a tab closed right after still revokes the token
      });
    } catch {
      // Offline: the refresh token simply expires; this browser forgets it either way.
    }
  }
  session.signOut();
}

import createClient from "openapi-fetch";

import { session } from "../auth/current";
import { toApiError } from "./errors";
import type { Paths } from "./types";

function withToken(request: Request, token: string | null): Request {
  const next = new Request(request);
  if (token) next.headers.set("Authorization", `Bearer ${token}`);
  return next;
}

/** A request with the access token; on a 401 it refreshes once and tries again. */
async function authedFetch(request: Request): Promise<Response> {
  const retry = request.clone();
  const response = await fetch(withToken(request, session.accessToken()));
  if (response.status !== 401 || !session.get()) return response;
  if (!(await session.refresh())) return response;
  return fetch(withToken(retry, session.accessToken()));
}

/** The typed /v1 client (types generated from /openapi.json: src/api/schema.d.ts). */
export const api = createClient<Paths>({ baseUrl: window.location.origin, fetch: authedFetch });

/** For the calls made without a session (sign in, refresh). */
export const anonymousApi = createClient<Paths>({ baseUrl: window.location.origin });

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The response's data, or the API's error thrown as an ApiError. */
export async function unwrap<T>(call: Promise<Outcome<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw toApiError(response.status, error);
  return data as T;
}

import { useSyncExternalStore } from "react";

import { session } from "./current";
import type { SignedIn } from "./session";

export function useSession(): SignedIn | null {
  return useSyncExternalStore(session.subscribe, session.get);
}

import { Center, Loader } from "@mantine/core";
import { useEffect, useState, type ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { Navigate, useLocation } from "react-router";

import { session } from "./current";
import { useSession } from "./useSession";

/** The signed-in part of the console; a stale stored token is refreshed before any request. */
export function RequireSession({ children }: { children: ReactNode }) {
  const { t } = useTranslation();
  const signedIn = useSession();
  const location = useLocation();
  const [ready, setReady] = useState(() => session.isFresh());

  useEffect(() => {
    if (ready || !signedIn) return;
    void session.refresh().then(() => setReady(true));
  }, [ready, signedIn]);

  if (!signedIn) {
    const from = location.pathname + location.search;
    return <Navigate to="/signin" replace state={{ from }} />;
  }
  if (!ready) {
    return (
      <Center h="100vh">
        <Loader aria-label={t("app.loading")} />
      </Center>
    );
  }
  return <>{children}</>;
}

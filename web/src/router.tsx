import { createBrowserRouter, Navigate } from "react-router";

import { RequireSession } from "./auth/RequireSession";
import { Shell } from "./layout/Shell";
import { NotFound } from "./pages/NotFound";
import { SignIn } from "./pages/SignIn";
import { RouteError } from "./pages/RouteError";

// Later pages are separate chunks, loaded when first visited (the sign-in page stays small).
export const router = createBrowserRouter(
  [
    { path: "/signin", element: <SignIn /> },
    {
      path: "/",
      element: (
        <RequireSession>
          <Shell />
        </RequireSession>
      ),
      errorElement: <RouteError />,
      children: [
        { index: true, element: <Navigate to="/inbox" replace /> },
        {
          path: "inbox/:conversationId?",
          lazy: async () => ({ Component: (await import("./pages/inbox/InboxPage")).default }),
        },
        {
          path: "contacts/*",
          lazy: async () => ({ Component: (await import("./pages/contacts/ContactsPage")).default }),
        },
        {
          path: "settings/*",
          lazy: async () => ({ Component: (await import("./pages/settings/SettingsPage")).default }),
        },
        { path: "*", element: <NotFound /> },
      ],
    },
  ],
  { basename: "/app" },
);

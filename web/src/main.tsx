import "@mantine/core/styles.css";
import "@mantine/notifications/styles.css";
import "./i18n";
import "./app.css";

import { MantineProvider } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { setNonce } from "get-nonce";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RouterProvider } from "react-router";

import { router } from "./router";
import { theme } from "./theme";

// The server puts a fresh nonce in this meta tag; the CSP admits only style elements carrying it.
const nonce = document.querySelector('meta[name="csp-nonce"]')?.getAttribute("content") ?? "";
// Modals lock the page scroll with a style element of their own (react-remove-scroll): same nonce.
setNonce(nonce);

const queryClient = new QueryClient({
  defaultOptions: {
    queries: { staleTime: 10_000, retry: 1, refetchOnWindowFocus: false },
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <MantineProvider theme={theme} getStyleNonce={() => nonce}>
      <Notifications />
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);

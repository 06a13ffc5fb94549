import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The build goes into the Python package, so `pip install .` ships a built console.
const OUT_DIR = "../src/pytake/dashboard/static";
const API = process.env.PYTAKE_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "/app/",
  plugins: [react()],
  build: {
    outDir: OUT_DIR,
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
  server: {
    // `npm run dev`: the console on Vite's server, the API proxied to a running `pytake serve`.
    proxy: {
      "/v1": API,
      "/ws": { target: API.replace(/^http/, "ws"), ws: true },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});

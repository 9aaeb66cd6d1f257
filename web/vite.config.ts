/// <reference types="vitest/config" />
// Vite config for the camhub UI. `npm run build` writes web/dist/ (served by the gateway at /);
// `npm run dev` proxies the API to a running gateway (CAMHUB_HTTP_PORT, default 8080).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const gateway = `http://127.0.0.1:${process.env.CAMHUB_HTTP_PORT ?? "8080"}`;

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: { outDir: "dist", sourcemap: true, target: "es2022", chunkSizeWarningLimit: 800 },
  server: {
    host: "127.0.0.1",
    proxy: {
      "/api": gateway,
      "/hls": gateway,
      "/whep": gateway,
      "/health": gateway,
      "/ws": { target: gateway.replace("http", "ws"), ws: true },
    },
  },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});

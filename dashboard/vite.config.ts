// Builds the dashboard into dashboard/dist/, which the server serves on --dashboard-address.
// Relative asset paths (base "./") so the page works wherever the server mounts it; hash
// routing, so the server only ever serves index.html and assets/*.
//
// The views call Preact's h() (no JSX, see src/components.ts), so no JSX transform, Babel or
// @preact/preset-vite is needed: Vite's defaults build TypeScript as it is.

import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No source maps: the server serves only the page's own types of file (not .map), and a
    // map would triple what the build writes for nothing a user can fetch.
    sourcemap: false,
  },
  server: {
    // `npm run dashboard:dev` with a server started with --dashboard-address 127.0.0.1:8090.
    // The gateway refuses requests whose Origin is another host than its own (the dev server's
    // is): the proxy drops the header, as a same-origin page's request would look.
    proxy: {
      "/api": {
        target: process.env.PIPEWRIGHT_DASHBOARD_API ?? "http://127.0.0.1:8090",
        configure: (proxy) => proxy.on("proxyReq", (request) => request.removeHeader("origin")),
      },
    },
  },
});

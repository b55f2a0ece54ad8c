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
    // Source maps for the people debugging a page in the field; they are fetched only by devtools.
    sourcemap: true,
  },
  server: {
    // `npm run dashboard:dev` with a server started with --dashboard-address 127.0.0.1:8090.
    proxy: { "/api": process.env.PIPEWRIGHT_DASHBOARD_API ?? "http://127.0.0.1:8090" },
  },
});

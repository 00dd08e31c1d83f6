import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The bundle ships inside the Python package (ruvon/web_dist) and `ruvon serve` serves it at `/`.
// Relative asset paths (base './') keep it working under --root-path; fixed file names keep the build
// byte-for-byte reproducible, so CI can rebuild it and fail when the committed bundle is stale.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: {
    outDir: "../ruvon/web_dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  server: { proxy: { "/v1": "http://127.0.0.1:8000", "/metrics": "http://127.0.0.1:8000" } },
});

/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The desktop app loads ui/dist through Tauri's custom protocol; `VITE_MOCK=1` builds the same
// UI with an in-memory backend for the browser tests (tests/browser) and screenshots.
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  base: "./",
  build: {
    outDir: "dist",
    target: "es2021",
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./tests/setup.ts"],
    include: ["tests/unit/**/*.test.{ts,tsx}"],
  },
});

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import "./i18n";
import "./styles.css";
import { App } from "./App";
import { SharedProvider } from "./store";

async function start() {
  // The browser tests and screenshots build the UI with an in-memory backend instead of Rust.
  if (import.meta.env.VITE_MOCK === "1") {
    const { installMockBackend } = await import("./mock/backend");
    installMockBackend(undefined, { persist: true });
  }
  const root = document.getElementById("root");
  if (!root) return;
  createRoot(root).render(
    <StrictMode>
      <SharedProvider>
        <App />
      </SharedProvider>
    </StrictMode>,
  );
}

start();
